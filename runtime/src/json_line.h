// One JSON value on one line, spaced as the documentation shows it: {"key": 1, "list": [1, 2]}.
// nlohmann's compact dump has no spaces after ':' and ','; scripts parse either, people read this.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace scada::runtime {

// Text from the wire may hold invalid UTF-8: it is replaced (U+FFFD), never thrown on.
template <class Json>
std::string dump_leaf(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

inline std::string json_line(const nlohmann::ordered_json& value) {
  if (value.is_object()) {
    std::string out = "{";
    for (const auto& [key, member] : value.items()) {
      if (out.size() > 1) out += ", ";
      out += dump_leaf(nlohmann::json(key)) + ": " + json_line(member);
    }
    return out + "}";
  }
  if (value.is_array()) {
    std::string out = "[";
    for (const auto& element : value) {
      if (out.size() > 1) out += ", ";
      out += json_line(element);
    }
    return out + "]";
  }
  return dump_leaf(value);
}

}  // namespace scada::runtime
