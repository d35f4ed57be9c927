// scadactl decode: every TPKT / COTP / S7comm PDU of a capture, one line each, and a summary.
// The capture reader hands over in-order TCP bytes per direction; from there on this is the
// same codec the connections use (one TPKT and one COTP reassembler per direction).
#include <cstdio>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

#include <nlohmann/json.hpp>

#include "channel/channel.h"
#include "json_line.h"
#include "runtime/runtime.h"

namespace scada::runtime {
namespace {

namespace ch = scada::channel;
using Line = nlohmann::ordered_json;

constexpr std::uint16_t kIsoTsapPort = 102;
constexpr std::uint8_t kS7commId = 0x32, kS7commPlusId = 0x72;

struct Summary {
  std::size_t cotp = 0, s7comm = 0, job = 0, ack = 0, ack_data = 0, userdata = 0, read_var = 0,
              write_var = 0, other_protocol = 0, malformed = 0;

  Line to_json() const {
    Line counts;
    counts["cotp"] = cotp;
    counts["s7comm"] = s7comm;
    counts["job"] = job;
    counts["ack"] = ack;
    counts["ack_data"] = ack_data;
    counts["userdata"] = userdata;
    counts["read_var"] = read_var;
    counts["write_var"] = write_var;
    counts["other_protocol"] = other_protocol;
    counts["malformed"] = malformed;
    return counts;
  }
};

std::string hex(unsigned value, int digits) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%0*x", digits, value);
  return text;
}

std::string endpoint(const TcpEndpoint& e) {
  const bool v6 = e.address.find(':') != std::string::npos;
  return (v6 ? "[" + e.address + "]" : e.address) + ":" + std::to_string(e.port);
}

// "ff,ff,0a"
std::string return_code_list(const std::vector<std::uint8_t>& codes) {
  std::string text;
  for (auto rc : codes) {
    if (!text.empty()) text += ',';
    text += hex(rc, 2).substr(2);
  }
  return text;
}

// Text form of a line: frame and direction first, then the COTP type, then key=value pairs.
void print_text(std::ostream& out, const Line& line) {
  out << "frame " << line["frame"].get<std::size_t>() << "  " << line["src"].get<std::string>()
      << " -> " << line["dst"].get<std::string>();
  for (const auto& [key, value] : line.items()) {
    if (key == "frame" || key == "src" || key == "dst") continue;
    if (key == "cotp" || key == "rosctr") {
      out << "  " << value.get<std::string>();
    } else if (key == "malformed") {
      out << "  malformed: " << value.get<std::string>();
    } else if (key == "error_code" || key == "szl_index") {
      continue;  // printed together with error_class / szl_id
    } else if (key == "error_class") {
      out << "  error=" << hex(value.get<unsigned>() << 8 | line["error_code"].get<unsigned>(), 4)
          << " (" << line["error_text"].get<std::string>() << ")";
    } else if (key == "error_text") {
      continue;
    } else if (key == "szl_id") {
      out << "  szl=" << hex(value.get<unsigned>(), 4) << " index "
          << hex(line["szl_index"].get<unsigned>(), 4);
    } else if (key == "pdu_ref") {
      out << "  ref=" << value.get<unsigned>();
    } else if (value.is_string()) {
      const auto text = value.get<std::string>();
      out << "  " << key << "=" << (text.find(' ') != std::string::npos ? '"' + text + '"' : text);
    } else {
      out << "  " << key << "=" << value.dump();
    }
  }
  out << '\n';
}

class Decoder {
 public:
  Decoder(const DecodeOptions& options, std::ostream& out, std::ostream& err)
      : json_(options.json), out_(out), err_(err) {}

  void chunk(const TcpChunk& c) {
    auto [it, fresh] = streams_.try_emplace(c.stream);
    Stream& s = it->second;
    if (fresh) {
      // Only ISO-on-TCP streams: port 102, or bytes that start like a TPKT header.
      const bool tpkt = c.from.port == kIsoTsapPort || c.to.port == kIsoTsapPort ||
                        (c.bytes[0] == 0x03 && (c.bytes.size() < 2 || c.bytes[1] == 0x00));
      s.state = tpkt ? Stream::State::decoding : Stream::State::ignored;
      s.direction = endpoint(c.from) + " -> " + endpoint(c.to);
    }
    if (s.state != Stream::State::decoding) return;

    const auto framing = s.tpkt.feed(c.bytes);
    ch::Bytes tpdu;
    while (s.tpkt.next(tpdu)) cotp(c, s, tpdu);
    if (framing) {
      // The stream cannot be cut into frames any more: report once and stop reading it.
      malformed(c, nullptr, *framing);
      s.state = Stream::State::failed;
    }
  }

  void finish() {
    for (const auto& [id, s] : streams_) {
      if (s.state != Stream::State::decoding) continue;
      if (s.tpkt.buffered() > 0) {
        err_ << "warning: " << s.direction << ": capture ends inside a TPKT frame ("
             << s.tpkt.buffered() << " bytes)\n";
      } else if (!s.cotp.idle()) {
        err_ << "warning: " << s.direction << ": capture ends inside a PDU split over DTs\n";
      }
    }
    if (json_) {
      out_ << json_line(Line{{"summary", summary_.to_json()}}) << '\n';
    } else {
      const Line counts = summary_.to_json();
      out_ << "summary:";
      for (const auto& [key, value] : counts.items()) out_ << ' ' << key << '=' << value;
      out_ << '\n';
    }
  }

  bool clean() const { return summary_.malformed == 0; }

 private:
  struct Stream {
    enum class State { decoding, ignored, failed } state = State::decoding;
    std::string direction;
    ch::TpktReassembler tpkt;
    ch::CotpReassembler cotp;
    // Data unit references of SZL answers whose further pieces are still to come: those
    // pieces start with records, not with an SZL id.
    std::set<std::uint8_t> szl_pieces_pending;
  };

  Line start(const TcpChunk& c, const char* cotp_type = nullptr) {
    Line line;
    line["frame"] = c.frame;
    line["src"] = endpoint(c.from);
    line["dst"] = endpoint(c.to);
    if (cotp_type) line["cotp"] = cotp_type;
    return line;
  }

  void emit(const Line& line) {
    if (json_) {
      // Text from the wire is hex or printable already; replace, never throw, if one slips by.
      out_ << json_line(line) << '\n';
    } else {
      print_text(out_, line);
    }
  }

  void malformed(const TcpChunk& c, const char* cotp_type, const ch::WireError& error) {
    ++summary_.malformed;
    Line line = start(c, cotp_type);
    line["malformed"] = error.to_string();
    emit(line);
  }

  void cotp(const TcpChunk& c, Stream& s, const ch::Bytes& tpdu) {
    auto decoded = ch::decode_cotp(tpdu);
    if (!decoded) return malformed(c, nullptr, decoded.error());
    ++summary_.cotp;
    ch::CotpTpdu& t = decoded.value();
    Line line = start(c, ch::cotp_name(t));
    if (auto* connect = std::get_if<ch::CotpConnect>(&t)) {
      if (connect->calling) line["calling_tsap"] = connect->calling->to_string();
      if (connect->called) line["called_tsap"] = connect->called->to_string();
      line["tpdu_size"] = connect->tpdu_size();
    } else if (auto* disconnect = std::get_if<ch::CotpDisconnect>(&t)) {
      if (!disconnect->confirm) line["reason"] = disconnect->reason;
    } else if (auto* reject = std::get_if<ch::CotpReject>(&t)) {
      line["cause"] = reject->cause;
    } else {
      // DT: a PDU line once the PDU is complete; fast acknowledges and fragments print nothing.
      auto joined = s.cotp.add(std::move(std::get<ch::CotpData>(t)));
      if (!joined) return malformed(c, "DT", joined.error());
      if (joined.value()) pdu(c, s, std::move(line), *joined.value());
      return;
    }
    emit(line);
  }

  void pdu(const TcpChunk& c, Stream& s, Line line, const ch::Bytes& bytes) {
    if (bytes[0] == kS7commPlusId) {
      ++summary_.other_protocol;
      line["other_protocol"] = "S7CommPlus";
      return emit(line);
    }
    if (bytes[0] != kS7commId) {
      return malformed(c, "DT",
                       ch::WireError{ch::WireErrorKind::bad_value, 0,
                                     "protocol id " + hex(bytes[0], 2) +
                                         " is neither S7comm (0x32) nor S7CommPlus (0x72)"});
    }
    auto decoded = ch::decode_s7(bytes);
    if (!decoded) return malformed(c, "DT", decoded.error());
    const ch::Pdu& p = decoded.value();
    count(p);

    line["rosctr"] = ch::rosctr_name(p.header.rosctr);
    line["pdu_ref"] = p.header.pdu_ref;
    if (auto f = ch::function_of(p)) {
      std::string name = ch::function_name(*f);
      if (name == "Unknown function") name += " " + hex(*f, 2);
      line["function"] = name;
    }
    std::visit(
        [&](const auto& body) {
          using T = std::decay_t<decltype(body)>;
          if constexpr (std::is_same_v<T, ch::ReadVarRequest> ||
                        std::is_same_v<T, ch::WriteVarRequest>) {
            line["items"] = body.items.size();
          } else if constexpr (std::is_same_v<T, ch::ReadVarResponse>) {
            line["items"] = body.items.size();
            std::vector<std::uint8_t> codes;
            for (const auto& item : body.items) codes.push_back(item.return_code);
            line["return_codes"] = return_code_list(codes);
          } else if constexpr (std::is_same_v<T, ch::WriteVarResponse>) {
            line["items"] = body.return_codes.size();
            line["return_codes"] = return_code_list(body.return_codes);
          } else if constexpr (std::is_same_v<T, ch::SetupCommunication>) {
            line["pdu_size"] = body.pdu_size;
          } else if constexpr (std::is_same_v<T, ch::Userdata>) {
            line["group"] = body.param.group;
            line["subfunction"] = body.param.subfunction;
          }
        },
        p.body);

    std::uint16_t error = p.header.error();
    if (const auto* u = std::get_if<ch::Userdata>(&p.body); u && error == 0) error = u->param.error;
    if (error != 0) {
      line["error_class"] = error >> 8;
      line["error_code"] = error & 0xFF;
      line["error_text"] = ch::s7_error_text(error);
    }
    if (auto szl = szl_id(s, p)) {
      line["szl_id"] = szl->id;
      line["szl_index"] = szl->index;
    }
    emit(line);
  }

  // The SZL id of a request or of the first piece of an answer; later pieces carry records.
  static std::optional<ch::SzlRequest> szl_id(Stream& s, const ch::Pdu& p) {
    const auto* u = std::get_if<ch::Userdata>(&p.body);
    if (!u) return std::nullopt;
    const bool response = u->param.type == 8;
    if (response && u->param.long_form) {
      const std::uint8_t unit = u->param.data_unit_ref;
      const bool later_piece = s.szl_pieces_pending.count(unit) == 1;
      if (u->param.more_follows) {
        s.szl_pieces_pending.insert(unit);
      } else {
        s.szl_pieces_pending.erase(unit);
      }
      if (later_piece) return std::nullopt;
    }
    return ch::szl_id_of(p);
  }

  void count(const ch::Pdu& p) {
    ++summary_.s7comm;
    switch (p.header.rosctr) {
      case ch::Rosctr::job:
        ++summary_.job;
        break;
      case ch::Rosctr::ack:
        ++summary_.ack;
        break;
      case ch::Rosctr::ack_data:
        ++summary_.ack_data;
        break;
      case ch::Rosctr::userdata:
        ++summary_.userdata;
        break;
    }
    const auto f = ch::function_of(p);
    if (f == std::uint8_t(ch::Function::read_var)) ++summary_.read_var;
    if (f == std::uint8_t(ch::Function::write_var)) ++summary_.write_var;
  }

  bool json_;
  std::ostream& out_;
  std::ostream& err_;
  std::map<std::size_t, Stream> streams_;
  Summary summary_;
};

}  // namespace

int decode_command(const DecodeOptions& options, std::ostream& out, std::ostream& err) {
  CaptureReadResult capture;
  try {
    capture = read_capture(options.capture);
  } catch (const std::exception& e) {
    err << "scadactl decode: " << e.what() << '\n';
    return 2;
  }
  for (const auto& warning : capture.warnings)
    err << "warning: " << options.capture << ": " << warning << '\n';

  Decoder decoder(options, out, err);
  for (const auto& chunk : capture.chunks) decoder.chunk(chunk);
  decoder.finish();
  return decoder.clean() ? 0 : 1;
}

}  // namespace scada::runtime
