#include "byte_io.h"

namespace scada::channel {

using detail::put_u16;

Bytes tpkt_wrap(ByteView tpdu) {
  Bytes out;
  out.reserve(kTpktHeaderSize + tpdu.size());
  out.push_back(0x03);
  out.push_back(0x00);
  put_u16(out, std::uint16_t(kTpktHeaderSize + tpdu.size()));
  detail::put_bytes(out, tpdu);
  return out;
}

TpktReassembler::TpktReassembler(std::size_t max_frame)
    : max_frame_(std::min(max_frame, kTpktMaxFrame)) {}

std::optional<WireError> TpktReassembler::feed(ByteView chunk) {
  if (failed_) return failed_;
  // Drop what was handed out before growing the buffer, so it holds at most one partial frame
  // plus the new chunk.
  if (consumed_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + std::ptrdiff_t(consumed_));
    stream_offset_ += consumed_;
    scanned_ -= consumed_;
    consumed_ = 0;
  }
  buffer_.insert(buffer_.end(), chunk.begin(), chunk.end());
  // Validate every complete header now, so a bad stream fails as soon as its bytes arrive.
  while (buffer_.size() - scanned_ >= kTpktHeaderSize) {
    const std::uint8_t* h = buffer_.data() + scanned_;
    const std::size_t at = std::size_t(stream_offset_) + scanned_;
    if (h[0] != 0x03) {
      failed_ = WireError{WireErrorKind::bad_value, at,
                          "TPKT version " + detail::hex8(h[0]) + ", expected 0x03"};
      return failed_;
    }
    const std::size_t len = std::size_t(h[2]) << 8 | h[3];
    if (len < 7) {
      failed_ = WireError{WireErrorKind::bad_length, at,
                          "TPKT length " + std::to_string(len) + " below the minimum of 7"};
      return failed_;
    }
    if (len > max_frame_) {
      failed_ = WireError{WireErrorKind::too_large, at,
                          "TPKT length " + std::to_string(len) + " exceeds the limit of " +
                              std::to_string(max_frame_)};
      return failed_;
    }
    if (buffer_.size() - scanned_ < len) break;
    scanned_ += len;
  }
  return std::nullopt;
}

bool TpktReassembler::next(Bytes& out) {
  if (consumed_ >= scanned_) return false;
  const std::uint8_t* h = buffer_.data() + consumed_;
  const std::size_t len = std::size_t(h[2]) << 8 | h[3];
  out.assign(h + kTpktHeaderSize, h + len);
  consumed_ += len;
  return true;
}

}  // namespace scada::channel
