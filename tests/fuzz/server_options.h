// server_options.h: the simulated PLC of fuzz_server, chosen by the input's first byte, shared
// with the seed generator (make_seeds.cpp) so that its conversations fit the target.
//   bits 0-1  mode: none, tls, s7-secure, none
//   bits 2-3  max PDU offered in setup communication: 240, 480, 960, 240
//   bit 4     the wrong_pdu_ref fault
//   bit 5     the CPU is in STOP
//   bit 6     s7-secure: the TLS handshake never completes
#pragma once

#include <cstdint>

#include "plc_state.h"

namespace scada::fuzz {

inline constexpr std::uint8_t kServerTls = 0x01, kServerS7Secure = 0x02, kServerPdu480 = 0x04,
                              kServerPdu960 = 0x08, kServerWrongRef = 0x10, kServerStop = 0x20,
                              kServerNoHandshake = 0x40;

inline plcsim::PlcConfig server_config(std::uint8_t options) {
  static constexpr channel::SecurityMode modes[] = {
      channel::SecurityMode::none, channel::SecurityMode::tls, channel::SecurityMode::s7_secure,
      channel::SecurityMode::none};
  static constexpr std::uint16_t pdus[] = {240, 480, 960, 240};
  plcsim::PlcConfig c;
  c.mode = modes[options & 3];
  c.max_pdu = pdus[(options >> 2) & 3];
  c.data_blocks = {{1, 1024}, {2, 64}};
  c.flags_bytes = 128;
  c.inputs_bytes = 32;
  c.outputs_bytes = 32;
  c.timers = 16;
  c.counters = 16;
  return c;
}

// The PLC state of those options: configuration, fault and RUN/STOP.
inline void apply_server_options(plcsim::PlcState& plc, std::uint8_t options) {
  plcsim::Faults faults;
  faults.wrong_pdu_ref = (options & kServerWrongRef) != 0;
  plc.set_faults(faults);
  plc.set_running((options & kServerStop) == 0);
}

}  // namespace scada::fuzz
