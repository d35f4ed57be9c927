// read_tag_file (tag_file.h).
#include "tag_file.h"

#include <fstream>
#include <stdexcept>
#include <string_view>

namespace scada::runtime {

namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

std::vector<TagFileLine> read_tag_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error(path + ": cannot open the tag file");
  std::vector<TagFileLine> out;
  std::string text;
  for (std::size_t number = 1; std::getline(file, text); ++number) {
    const std::string_view line = std::string_view(text).substr(0, text.find('#'));
    if (trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    const std::size_t lead = line.find_first_not_of(" \t");
    const std::size_t end = std::min(line.find_first_of(" \t\r", lead), line.size());
    const std::string_view address_text = line.substr(lead, end - lead);
    auto address = tags::Address::parse(address_text);
    if (auto* e = std::get_if<tags::ParseError>(&address)) {
      throw std::runtime_error(where + "bad address '" + std::string(address_text) +
                               "': " + e->reason + " (column " +
                               std::to_string(lead + e->position + 1) + ")");
    }
    TagFileLine tag{number, std::get<tags::Address>(address), {}};
    tag.type = tags::default_type(tag.address);
    const std::string_view type_text = trim(line.substr(end));
    if (!type_text.empty()) {
      auto type = tags::TypeSpec::parse(type_text);
      if (auto* e = std::get_if<tags::ParseError>(&type)) {
        throw std::runtime_error(where + "bad type '" + std::string(type_text) + "': " + e->reason);
      }
      tag.type = std::get<tags::TypeSpec>(type);
      if (auto why = tags::check_fits(tag.address, tag.type))
        throw std::runtime_error(where + *why);
    }
    out.push_back(std::move(tag));
  }
  if (file.bad()) throw std::runtime_error(path + ": read error");
  return out;
}

}  // namespace scada::runtime
