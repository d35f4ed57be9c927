#include "channel/channel.h"

namespace scada::channel {

std::string WireError::to_string() const {
  const char* kind_text = "";
  switch (kind) {
    case WireErrorKind::truncated:
      kind_text = "truncated";
      break;
    case WireErrorKind::bad_value:
      kind_text = "bad value";
      break;
    case WireErrorKind::bad_length:
      kind_text = "bad length";
      break;
    case WireErrorKind::too_large:
      kind_text = "too large";
      break;
  }
  return std::string(kind_text) + " at byte " + std::to_string(offset) + ": " + reason;
}

}  // namespace scada::channel
