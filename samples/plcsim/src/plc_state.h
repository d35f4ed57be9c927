// plc_state.h: one simulated CPU's shared state (memory, RUN/STOP, identity, faults) and the
// rules by which Read Var / Write Var items are answered. No I/O. Thread-safe: one mutex inside,
// because tests, the control socket and the event loop all touch it.
//
// Memory
//   I, Q, M: inputs_bytes / outputs_bytes / flags_bytes bytes. DB and DI: the same blocks,
//   data_blocks (DI addresses a data block as an instance DB). T and C: timers / counters
//   elements of 2 bytes each, addressed by number. P (peripheral I/O) is not simulated.
//   The process-value block (config().process_db, unless 0) is added to data_blocks with 16
//   bytes when the configuration does not name it; if it does, it must hold at least 14 bytes.
//
// Return codes of one item, checked in this order (the first rule that matches wins):
//   0x0A object does not exist  area P or an area byte that is not an S7 area; DB/DI number
//                               not in data_blocks (I/Q/M/T/C ignore the DB field)
//   0x06 type not supported     a transport size byte other than BIT, BYTE, CHAR, WORD, INT,
//                               DWORD, DINT, REAL, COUNTER, TIMER (DATE, TOD, S5TIME, ...)
//   0x07 type inconsistent      TIMER outside T, COUNTER outside C, anything but TIMER in T or
//                               COUNTER in C; count 0; BIT with count != 1;
//                               writes: data length != count * element size (BIT: 1 byte)
//   0x05 address out of range   a non-BIT item in I/Q/M/DB/DI whose address has a bit part;
//                               the range (start + count * element size) ends past the area
//   0xFF success
// Memory is readable and writable in STOP too, as on a real CPU.
//
// Reply data transport size (WIRE.md §3) and bytes per element:
//   BIT -> 0x03 bit (1 byte, 0 or 1); BYTE, CHAR, WORD, DWORD -> 0x04 byte/word/dword;
//   INT, DINT -> 0x05 integer (both with LEN in bits); REAL -> 0x07 real;
//   TIMER, COUNTER -> 0x09 octet string (LEN in bytes).
//   BIT 1, BYTE 1, CHAR 1, WORD 2, INT 2, DWORD 4, DINT 4, REAL 4, TIMER 2, COUNTER 2.
// A BIT write changes exactly the addressed bit: any non-zero data byte sets it, 0 clears it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "channel/channel.h"
#include "plcsim/plcsim.h"

namespace scada::plcsim {

// Bytes one element of a transport size occupies; 0 for a size the simulator does not serve.
std::size_t element_size(channel::TransportSize transport);

class PlcState {
 public:
  // Validates the configuration; throws std::invalid_argument naming the problem.
  explicit PlcState(const PlcConfig& config);

  // The configuration as served (with the process-value block added to data_blocks). Immutable.
  const PlcConfig& config() const { return config_; }

  // Read Var: one item -> its reply data item (return code 0xFF and data, or an error code with
  // DataSize::null and no data). The span form reads all items under one lock, so the items of
  // one request see one consistent memory image, as within one CPU cycle.
  channel::DataItem read(const channel::VarItem& item) const;
  std::vector<channel::DataItem> read(std::span<const channel::VarItem> items) const;

  // Write Var: one item and its data -> return code (0xFF success). The span form writes all
  // items under one lock; items and data must have the same length.
  std::uint8_t write(const channel::VarItem& item, const channel::DataItem& data);
  std::vector<std::uint8_t> write(std::span<const channel::VarItem> items,
                                  std::span<const channel::DataItem> data);

  // Raw memory access for tests and the Plc API. Offsets are bytes; for T and C the offset is
  // the first element's number and length counts bytes (2 per element). DI is DB.
  // Throw std::out_of_range naming the area when the range does not exist.
  channel::Bytes read_raw(channel::Area area, std::uint16_t db, std::uint32_t offset,
                          std::size_t length) const;
  void write_raw(channel::Area area, std::uint16_t db, std::uint32_t offset,
                 channel::ByteView bytes);

  void set_running(bool run);
  bool running() const;

  void set_faults(const Faults& faults);
  Faults faults() const;

  // System status lists: 0x0011 module identification (records 0x0001 order number, 0x0006
  // hardware, 0x0007 firmware), 0x001C component identification (records 1-5, 7-0x0B),
  // 0x0424 current mode (08 RUN / 04 STOP), 0x0000 the list of these ids. The index is echoed;
  // every index returns the whole list. Any other id -> nullopt (the session answers 0xD401).
  std::optional<channel::SzlList> szl(std::uint16_t id, std::uint16_t index) const;

  // Advances the process values in config().process_db by one tick: DInt counter at byte 0
  // + 1 (wrapping), Real sawtooth at byte 4 = counter mod 100 (0 <= v < 100), Real sine at
  // byte 8 = sin(2 pi * (counter mod 100) / 100). They derive from the counter in memory, so a
  // client that writes the counter moves them too. No-op in STOP or when process_db is 0.
  void tick();

 private:
  // Where an item's bytes are in the memory of its area, or why it has none.
  struct Location {
    std::size_t offset = 0;  // bytes into the area's memory
    std::size_t length = 0;  // bytes
    std::uint8_t return_code = 0xFF;
  };
  // The callers of these hold mutex_.
  Location locate(const channel::VarItem& item) const;
  channel::DataItem read_locked(const channel::VarItem& item) const;
  std::uint8_t write_locked(const channel::VarItem& item, const channel::DataItem& data);
  // The bytes of an area, nullptr when it does not exist.
  const channel::Bytes* memory(channel::Area area, std::uint16_t db) const;
  channel::Bytes* memory(channel::Area area, std::uint16_t db);
  // The byte offset of a raw range; throws std::out_of_range naming the area.
  std::size_t raw_start(channel::Area area, std::uint16_t db, std::uint32_t offset,
                        std::size_t length) const;

  PlcConfig config_;
  mutable std::mutex mutex_;
  channel::Bytes inputs_, outputs_, flags_, timers_, counters_;
  std::map<std::uint16_t, channel::Bytes> data_blocks_;
  bool running_ = true;
  Faults faults_;
};

}  // namespace scada::plcsim
