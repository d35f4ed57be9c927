// The tag file of scadactl plan and scadactl bench read: one tag per line, "ADDRESS [TYPE]",
// '#' starts a comment, blank lines are skipped; the type defaults to the address's (DB1.DBW0
// is a Word).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tags/tags.h"

namespace scada::runtime {

struct TagFileLine {
  std::size_t line = 0;  // 1-based
  tags::Address address;
  tags::TypeSpec type;
};

// Throws std::runtime_error naming the file and line of the first bad one ("tags.txt:7: bad
// address 'DB1.DBQ0': ... (column 5)"), or the file when it cannot be read.
std::vector<TagFileLine> read_tag_file(const std::string& path);

}  // namespace scada::runtime
