// tls_keylog_client PORT TRUST_PEM KEYLOG: connects to plcsim in tls mode with the project's
// test client (verifying the server against TRUST_PEM), writes and reads back DB1 items, reads
// SZL 0x0011, and appends the TLS secrets to KEYLOG so that tshark can decrypt a capture of it.
// Exits 0 when every write was acknowledged and read back as written.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../support/s7_test_client.h"

namespace ch = scada::channel;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: tls_keylog_client PORT TRUST_PEM KEYLOG\n");
    return 2;
  }
  try {
    scada::test::ClientOptions options;
    options.mode = scada::test::ClientMode::tls;
    options.tls.trust = argv[2];
    options.tls.keylog = argv[3];
    scada::test::S7TestClient client(options);
    client.connect(std::uint16_t(std::atoi(argv[1])));
    const auto granted = client.setup(480, 1);
    const std::vector<ch::VarItem> items = {
        {ch::TransportSize::byte, 4, 1, ch::Area::data_block, 0},
        {ch::TransportSize::word, 1, 1, ch::Area::data_block, 10 * 8},
        {ch::TransportSize::bit, 1, 1, ch::Area::data_block, 20 * 8 + 3}};
    const std::vector<ch::DataItem> data = {{0x00, ch::DataSize::byte_word_dword, {1, 2, 3, 4}},
                                            {0x00, ch::DataSize::byte_word_dword, {0xBE, 0xEF}},
                                            {0x00, ch::DataSize::bit, {0x01}}};
    const auto written = client.write(items, data);
    const auto read = client.read(items);
    const auto szl = client.read_szl(0x0011, 0x0000);
    client.close();
    bool ok = read.items.size() == data.size();
    for (std::size_t i = 0; ok && i < data.size(); ++i) {
      ok = written.return_codes[i] == 0xFF && read.items[i].return_code == 0xFF &&
           read.items[i].data == data[i].data;
    }
    std::printf("{\"pdu\": %u, \"written\": %zu, \"read_back_ok\": %s, \"szl_records\": %zu}\n",
                unsigned(granted.pdu_size), written.return_codes.size(), ok ? "true" : "false",
                szl.list.records.size());
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_keylog_client: %s\n", e.what());
    return 1;
  }
}
