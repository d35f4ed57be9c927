// The three security modes as the plcsim tests name them: the simulator's mode for a client
// mode, and a test-name suffix for parameterized tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "../support/s7_test_client.h"
#include "plcsim/plcsim.h"

namespace scada::test {

inline plcsim::SecurityMode server_mode(ClientMode mode) {
  switch (mode) {
    case ClientMode::none:
      return plcsim::SecurityMode::none;
    case ClientMode::tls:
      return plcsim::SecurityMode::tls;
    case ClientMode::s7_secure:
      return plcsim::SecurityMode::s7_secure;
  }
  return plcsim::SecurityMode::none;
}

// "none", "tls", "s7_secure" (test names allow no '-').
inline std::string mode_label(const testing::TestParamInfo<ClientMode>& info) {
  return info.param == ClientMode::s7_secure ? "s7_secure" : client_mode_name(info.param);
}

}  // namespace scada::test
