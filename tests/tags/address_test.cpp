// Table-driven tests of the S7 address syntax, data types, fit checks and wire mapping.
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "tags/tags.h"

namespace scada::tags {

// Readable failure messages.
void PrintTo(const Address& a, std::ostream* os) {
  *os << a.to_string() << " {area 0x" << std::hex << int(a.area) << std::dec << ", db " << a.db
      << ", width " << int(a.width) << ", offset " << a.offset << ", bit " << int(a.bit)
      << ", string_length " << a.string_length << "}";
}
void PrintTo(const ParseError& e, std::ostream* os) {
  *os << e.to_string();
}
void PrintTo(const TypeSpec& t, std::ostream* os) {
  *os << t.to_string();
}

namespace {

using channel::Area;
using channel::TransportSize;
using channel::VarItem;
using Width = Address::Width;

Address db_address(std::uint16_t db, Width width, std::uint32_t offset, std::uint8_t bit = 0,
                   std::uint16_t string_length = 0) {
  return Address{Area::data_block, db, width, offset, bit, string_length};
}
Address area_address(Area area, Width width, std::uint32_t offset, std::uint8_t bit = 0) {
  return Address{area, 0, width, offset, bit, 0};
}
Address timer(std::uint32_t n) {
  return Address{Area::timers, 0, Width::Timer, n, 0, 0};
}
Address counter(std::uint32_t n) {
  return Address{Area::counters, 0, Width::Counter, n, 0, 0};
}

Address parse_ok(std::string_view text) {
  auto result = Address::parse(text);
  if (const auto* error = std::get_if<ParseError>(&result)) {
    ADD_FAILURE() << "'" << text << "' did not parse: " << error->to_string();
    return Address{};
  }
  return std::get<Address>(result);
}

// ---------------------------------------------------------------------------------------------
// Every accepted form, and its canonical English spelling

struct ValidCase {
  std::string_view text;
  Address expected;
  std::string_view canonical;
};

const ValidCase kValid[] = {
    // Data blocks
    {"DB1.DBX0.0", db_address(1, Width::Bit, 0, 0), "DB1.DBX0.0"},
    {"db1.dbx0.7", db_address(1, Width::Bit, 0, 7), "DB1.DBX0.7"},
    {"DB1.DBB1", db_address(1, Width::Byte, 1), "DB1.DBB1"},
    {"DB1.DBW2", db_address(1, Width::Word, 2), "DB1.DBW2"},
    {"DB1.DBD4", db_address(1, Width::DWord, 4), "DB1.DBD4"},
    {"Db12.dBd4", db_address(12, Width::DWord, 4), "DB12.DBD4"},
    {"DB1.STRING10.20", db_address(1, Width::String, 10, 0, 20), "DB1.STRING10.20"},
    {"db2.string0.254", db_address(2, Width::String, 0, 0, 254), "DB2.STRING0.254"},
    {"DB3.String4.1", db_address(3, Width::String, 4, 0, 1), "DB3.STRING4.1"},
    {"DB1.LREAL8", db_address(1, Width::LReal, 8), "DB1.LREAL8"},
    {"db1.lreal8", db_address(1, Width::LReal, 8), "DB1.LREAL8"},
    {"DB65535.DBX2097151.7", db_address(65535, Width::Bit, 2097151, 7), "DB65535.DBX2097151.7"},
    {"DB65535.DBD2097151", db_address(65535, Width::DWord, 2097151), "DB65535.DBD2097151"},
    // Flags (memory)
    {"M10.2", area_address(Area::flags, Width::Bit, 10, 2), "M10.2"},
    {"MX10.2", area_address(Area::flags, Width::Bit, 10, 2), "M10.2"},
    {"mx10.2", area_address(Area::flags, Width::Bit, 10, 2), "M10.2"},
    {"M0.0", area_address(Area::flags, Width::Bit, 0, 0), "M0.0"},
    {"MB3", area_address(Area::flags, Width::Byte, 3), "MB3"},
    {"MW4", area_address(Area::flags, Width::Word, 4), "MW4"},
    {"mw4", area_address(Area::flags, Width::Word, 4), "MW4"},
    {"MD8", area_address(Area::flags, Width::DWord, 8), "MD8"},
    {"MB2097151", area_address(Area::flags, Width::Byte, 2097151), "MB2097151"},
    // Inputs, English and German
    {"I0.0", area_address(Area::inputs, Width::Bit, 0, 0), "I0.0"},
    {"E0.0", area_address(Area::inputs, Width::Bit, 0, 0), "I0.0"},
    {"IX1.7", area_address(Area::inputs, Width::Bit, 1, 7), "I1.7"},
    {"EX1.7", area_address(Area::inputs, Width::Bit, 1, 7), "I1.7"},
    {"IB1", area_address(Area::inputs, Width::Byte, 1), "IB1"},
    {"EB1", area_address(Area::inputs, Width::Byte, 1), "IB1"},
    {"IW2", area_address(Area::inputs, Width::Word, 2), "IW2"},
    {"EW2", area_address(Area::inputs, Width::Word, 2), "IW2"},
    {"ID4", area_address(Area::inputs, Width::DWord, 4), "ID4"},
    {"ED4", area_address(Area::inputs, Width::DWord, 4), "ID4"},
    {"ed4", area_address(Area::inputs, Width::DWord, 4), "ID4"},
    // Outputs, English and German
    {"Q0.1", area_address(Area::outputs, Width::Bit, 0, 1), "Q0.1"},
    {"A0.1", area_address(Area::outputs, Width::Bit, 0, 1), "Q0.1"},
    {"QX2.3", area_address(Area::outputs, Width::Bit, 2, 3), "Q2.3"},
    {"AX2.3", area_address(Area::outputs, Width::Bit, 2, 3), "Q2.3"},
    {"QB5", area_address(Area::outputs, Width::Byte, 5), "QB5"},
    {"AB5", area_address(Area::outputs, Width::Byte, 5), "QB5"},
    {"QW6", area_address(Area::outputs, Width::Word, 6), "QW6"},
    {"AW6", area_address(Area::outputs, Width::Word, 6), "QW6"},
    {"QD8", area_address(Area::outputs, Width::DWord, 8), "QD8"},
    {"AD8", area_address(Area::outputs, Width::DWord, 8), "QD8"},
    {"ad8", area_address(Area::outputs, Width::DWord, 8), "QD8"},
    // Timers and counters
    {"T5", timer(5), "T5"},
    {"t5", timer(5), "T5"},
    {"T0", timer(0), "T0"},
    {"T65535", timer(65535), "T65535"},
    {"C3", counter(3), "C3"},
    {"Z3", counter(3), "C3"},
    {"z3", counter(3), "C3"},
    {"C65535", counter(65535), "C65535"},
    // Surrounding spaces and leading zeros
    {"  MW4  ", area_address(Area::flags, Width::Word, 4), "MW4"},
    {"\tDB1.DBW2\r\n", db_address(1, Width::Word, 2), "DB1.DBW2"},
    {"DB001.DBW002", db_address(1, Width::Word, 2), "DB1.DBW2"},
    {"M010.02", area_address(Area::flags, Width::Bit, 10, 2), "M10.2"},
    {"MW0000000000000000000000000000004", area_address(Area::flags, Width::Word, 4), "MW4"},
};

TEST(AddressParse, AcceptsEveryFormAndPrintsItCanonically) {
  for (const ValidCase& c : kValid) {
    SCOPED_TRACE(std::string(c.text));
    const Address a = parse_ok(c.text);
    EXPECT_EQ(a, c.expected);
    EXPECT_EQ(a.to_string(), c.canonical);
    EXPECT_EQ(parse_ok(a.to_string()), a);
  }
}

// ---------------------------------------------------------------------------------------------
// parse(print(x)) == x over many values

std::vector<Address> many_addresses() {
  const std::uint32_t offsets[] = {0, 1, 7, 8, 255, 256, 4095, 65535, 65536, 1000000, 2097151};
  const Width image_widths[] = {Width::Bit, Width::Byte, Width::Word, Width::DWord};
  std::vector<Address> out;
  for (Area area : {Area::inputs, Area::outputs, Area::flags}) {
    for (Width w : image_widths) {
      for (std::uint32_t offset : offsets) {
        for (std::uint8_t bit = 0; bit < (w == Width::Bit ? 8 : 1); ++bit) {
          out.push_back(area_address(area, w, offset, bit));
        }
      }
    }
  }
  for (std::uint16_t db : {1, 2, 99, 1000, 65535}) {
    for (std::uint32_t offset : offsets) {
      for (Width w : image_widths) {
        for (std::uint8_t bit = 0; bit < (w == Width::Bit ? 8 : 1); ++bit) {
          out.push_back(db_address(db, w, offset, bit));
        }
      }
      out.push_back(db_address(db, Width::LReal, offset));
      for (std::uint16_t n : {1, 2, 20, 100, 253, 254}) {
        out.push_back(db_address(db, Width::String, offset, 0, n));
      }
    }
  }
  for (std::uint32_t n : {0, 1, 9, 10, 255, 256, 65535}) {
    out.push_back(timer(n));
    out.push_back(counter(n));
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
  return s;
}

// The German spelling of a canonical English address: I→E, Q→A, C→Z.
std::string german(std::string s) {
  if (s.empty()) return s;
  if (s[0] == 'I') s[0] = 'E';
  if (s[0] == 'Q') s[0] = 'A';
  if (s[0] == 'C') s[0] = 'Z';
  return s;
}

TEST(AddressParse, RoundTripsManyValues) {
  const std::vector<Address> all = many_addresses();
  ASSERT_GT(all.size(), 1000u);
  for (const Address& a : all) {
    const std::string text = a.to_string();
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_ok(text), a);
    EXPECT_EQ(parse_ok(lower(text)), a);
    EXPECT_EQ(parse_ok(german(text)), a);
    EXPECT_EQ(parse_ok(" " + text + " "), a);
  }
}

// ---------------------------------------------------------------------------------------------
// Every error, with where and why

struct ErrorCase {
  std::string_view text;
  std::size_t position;
  std::string_view reason;
};

const ErrorCase kErrors[] = {
    // Empty and unknown areas
    {"", 0, "empty address"},
    {"   ", 0, "empty address"},
    {"X5", 0, "unknown area 'X'"},
    {"  X5", 2, "unknown area 'X'"},
    {"PIW4", 0, "unknown area 'PIW'"},
    {"D5", 0, "unknown area 'D'"},
    {"5", 0, "expected an area (DB, I, E, Q, A, M, T, C or Z), found '5'"},
    {"+MW4", 0, "expected an area (DB, I, E, Q, A, M, T, C or Z), found '+'"},
    {"\x01MW4", 0, "expected an area (DB, I, E, Q, A, M, T, C or Z), found byte 0x01"},
    // DB number
    {"DB0.DBX0.0", 2, "DB number 0 out of range 1..65535"},
    {"DB65536.DBB0", 2, "DB number 65536 out of range 1..65535"},
    {"DB99999999999.DBB0", 2, "DB number 99999999999 out of range 1..65535"},
    {"DB.DBX0.0", 2, "expected DB number after 'DB', found '.'"},
    {"DBX0.0", 2, "expected DB number after 'DB', found 'X'"},
    {"DB", 2, "missing DB number after 'DB'"},
    {"DB-1.DBX0.0", 2, "sign '-' not allowed before DB number"},
    {"DB+1.DBX0.0", 2, "sign '+' not allowed before DB number"},
    // What follows the DB number
    {"DB1", 3, "missing '.' and DBX, DBB, DBW, DBD, STRING or LREAL after 'DB1'"},
    {"DB1,DBX0.0", 3,
     "expected '.' and DBX, DBB, DBW, DBD, STRING or LREAL after 'DB1', found ','"},
    {"DB1.", 4, "missing DBX, DBB, DBW, DBD, STRING or LREAL after 'DB1.'"},
    {"DB1.XYZ", 4, "expected DBX, DBB, DBW, DBD, STRING or LREAL after 'DB1.', found 'X'"},
    {"DB1.REAL4", 4, "expected DBX, DBB, DBW, DBD, STRING or LREAL after 'DB1.', found 'R'"},
    {"DB1.DBQ0", 6, "expected X, B, W or D after 'DB1.DB', found 'Q'"},
    {"DB1.DB", 6, "missing X, B, W or D after 'DB1.DB'"},
    // Byte offsets and bits in data blocks
    {"DB1.DBX0", 8, "missing '.' and bit number after 'DB1.DBX0'"},
    {"DB1.DBX0.", 9, "missing bit number after 'DB1.DBX0.'"},
    {"DB1.DBX0.8", 9, "bit number 8 out of range 0..7"},
    {"DB1.DBX0.-1", 9, "sign '-' not allowed before bit number"},
    {"DB1.DBX.0", 7, "expected byte offset after 'DB1.DBX', found '.'"},
    {"DB1.DBW", 7, "missing byte offset after 'DB1.DBW'"},
    {"DB1.DBW2097152", 7, "byte offset 2097152 out of range 0..2097151"},
    {"DB1.DBW2.0", 8, "trailing characters after address 'DB1.DBW2': '.0'"},
    {"DB1.DBB1x", 8, "trailing characters after address 'DB1.DBB1': 'x'"},
    {"DB1.DBD4 5", 8, "trailing characters after address 'DB1.DBD4': ' 5'"},
    {"DB1. DBD4", 4, "expected DBX, DBB, DBW, DBD, STRING or LREAL after 'DB1.', found ' '"},
    // Typed DB forms
    {"DB1.STRING10", 12, "missing '.' and string length after 'DB1.STRING10'"},
    {"DB1.STRING10.0", 13, "string length 0 out of range 1..254"},
    {"DB1.STRING10.255", 13, "string length 255 out of range 1..254"},
    {"DB1.STRING.20", 10, "expected byte offset after 'DB1.STRING', found '.'"},
    {"DB1.LREAL", 9, "missing byte offset after 'DB1.LREAL'"},
    {"DB1.LREAL8.0", 10, "trailing characters after address 'DB1.LREAL8': '.0'"},
    // Flags, inputs, outputs
    {"M10", 3, "missing '.' and bit number after 'M10'"},
    {"M10.8", 4, "bit number 8 out of range 0..7"},
    {"M10.2.3", 5, "trailing characters after address 'M10.2': '.3'"},
    {"M1 0.0", 2, "expected '.' and bit number after 'M1', found ' '"},
    {"MQ5", 1, "expected X, B, W, D or a byte offset after 'M', found 'Q'"},
    {"M", 1, "missing byte offset after 'M'"},
    {"MW", 2, "missing byte offset after 'MW'"},
    {"MW-4", 2, "sign '-' not allowed before byte offset"},
    {"M+1.0", 1, "sign '+' not allowed before byte offset"},
    {"MW99999999999", 2, "byte offset 99999999999 out of range 0..2097151"},
    {"MW2097152", 2, "byte offset 2097152 out of range 0..2097151"},
    {"MW4a", 3, "trailing characters after address 'MW4': 'a'"},
    {"mw4A", 3, "trailing characters after address 'mw4': 'A'"},
    {"MWX4", 2, "expected byte offset after 'MW', found 'X'"},
    {"IW", 2, "missing byte offset after 'IW'"},
    {"E1.9", 3, "bit number 9 out of range 0..7"},
    {"QB1.0", 3, "trailing characters after address 'QB1': '.0'"},
    {"A", 1, "missing byte offset after 'A'"},
    {"AZ1", 1, "expected X, B, W, D or a byte offset after 'A', found 'Z'"},
    // Timers and counters
    {"T", 1, "missing timer number after 'T'"},
    {"T65536", 1, "timer number 65536 out of range 0..65535"},
    {"TB5", 1, "expected timer number after 'T', found 'B'"},
    {"T5.0", 2, "trailing characters after address 'T5': '.0'"},
    {"C-1", 1, "sign '-' not allowed before counter number"},
    {"Z70000", 1, "counter number 70000 out of range 0..65535"},
    {"C", 1, "missing counter number after 'C'"},
    // Overlong input is quoted shortened
    {"MW9999999999999999999999999999999999999999", 2,
     "byte offset 999999999999999999999999... out of range 0..2097151"},
    {"MW4 this is a very long trailing comment indeed", 3,
     "trailing characters after address 'MW4': ' this is a very long tra...'"},
};

TEST(AddressParse, RejectsBadInputWithPositionAndReason) {
  for (const ErrorCase& c : kErrors) {
    SCOPED_TRACE("input '" + std::string(c.text) + "'");
    auto result = Address::parse(c.text);
    const auto* error = std::get_if<ParseError>(&result);
    ASSERT_NE(error, nullptr) << "parsed as " << std::get<Address>(result).to_string();
    EXPECT_EQ(error->reason, c.reason);
    EXPECT_EQ(error->position, c.position);
  }
}

TEST(AddressParse, RejectsEmbeddedNulAndNonAscii) {
  const std::string nul("M\0", 2);
  auto result = Address::parse(nul);
  ASSERT_TRUE(std::holds_alternative<ParseError>(result));
  EXPECT_EQ(std::get<ParseError>(result),
            (ParseError{1, "expected X, B, W, D or a byte offset after 'M', found byte 0x00"}));

  result = Address::parse("MW4\xC3\xA4");
  ASSERT_TRUE(std::holds_alternative<ParseError>(result));
  EXPECT_EQ(std::get<ParseError>(result),
            (ParseError{3, "trailing characters after address 'MW4': '?\?'"}));
}

TEST(AddressParse, ErrorToStringNamesThePosition) {
  auto result = Address::parse("M10.8");
  ASSERT_TRUE(std::holds_alternative<ParseError>(result));
  EXPECT_EQ(std::get<ParseError>(result).to_string(),
            "bit number 8 out of range 0..7 (at position 4)");
}

// Arbitrary text never crashes the parser; whatever parses prints back to itself, and every
// error points inside (or just past) the input.
TEST(AddressParse, SurvivesRandomText) {
  std::mt19937 rng(20240601);
  const std::string alphabet = "DBXWSTRINGLEAQMCZdbxw.0123456789 +-\t\x01\xFF";
  std::uniform_int_distribution<std::size_t> length(0, 24);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  int parsed = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string text(length(rng), ' ');
    for (char& c : text) c = alphabet[pick(rng)];
    auto result = Address::parse(text);
    if (const auto* a = std::get_if<Address>(&result)) {
      ++parsed;
      ASSERT_EQ(parse_ok(a->to_string()), *a) << text;
    } else {
      const auto& error = std::get<ParseError>(result);
      ASSERT_LE(error.position, text.size()) << text;
      ASSERT_FALSE(error.reason.empty()) << text;
    }
  }
  EXPECT_GT(parsed, 0);
}

// Every prefix of a valid address is handled (most are errors) without reading past it.
TEST(AddressParse, HandlesEveryPrefixOfValidAddresses) {
  for (const ValidCase& c : kValid) {
    for (std::size_t n = 0; n <= c.text.size(); ++n) {
      const std::string prefix(c.text.substr(0, n));  // its own allocation, for ASan
      auto result = Address::parse(prefix);
      if (const auto* error = std::get_if<ParseError>(&result)) {
        EXPECT_LE(error->position, prefix.size()) << prefix;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Data types

struct TypeCase {
  std::string_view text;
  TypeSpec expected;
  std::string_view canonical;
  std::size_t bytes;
};

const TypeCase kTypes[] = {
    {"Bool", {DataType::Bool}, "Bool", 1},
    {"bool", {DataType::Bool}, "Bool", 1},
    {"BYTE", {DataType::Byte}, "Byte", 1},
    {"Char", {DataType::Char}, "Char", 1},
    {"word", {DataType::Word}, "Word", 2},
    {"Int", {DataType::Int}, "Int", 2},
    {"DWord", {DataType::DWord}, "DWord", 4},
    {"dword", {DataType::DWord}, "DWord", 4},
    {"DInt", {DataType::DInt}, "DInt", 4},
    {"DINT", {DataType::DInt}, "DInt", 4},
    {"Real", {DataType::Real}, "Real", 4},
    {"LReal", {DataType::LReal}, "LReal", 8},
    {"lreal", {DataType::LReal}, "LReal", 8},
    {"String[20]", {DataType::String, 20}, "String[20]", 22},
    {"string[1]", {DataType::String, 1}, "String[1]", 3},
    {"STRING[254]", {DataType::String, 254}, "String[254]", 256},
    {"String[007]", {DataType::String, 7}, "String[7]", 9},
    {"Timer", {DataType::Timer}, "Timer", 2},
    {"Counter", {DataType::Counter}, "Counter", 2},
    {"  Real\t", {DataType::Real}, "Real", 4},
    {"Text[40]", {DataType::Text, 40}, "Text[40]", 40},
    {"text", {DataType::Text, 255}, "Text[255]", 255},
    {"UInt32", {DataType::DWord}, "DWord", 4},
    {"int32", {DataType::DInt}, "DInt", 4},
};

TEST(TypeSpecParse, AcceptsEveryTypeNameAndKnowsItsSize) {
  for (const TypeCase& c : kTypes) {
    SCOPED_TRACE(std::string(c.text));
    auto result = TypeSpec::parse(c.text);
    ASSERT_TRUE(std::holds_alternative<TypeSpec>(result))
        << std::get<ParseError>(result).to_string();
    const TypeSpec t = std::get<TypeSpec>(result);
    EXPECT_EQ(t, c.expected);
    EXPECT_EQ(t.to_string(), c.canonical);
    EXPECT_EQ(t.byte_size(), c.bytes);
    auto again = TypeSpec::parse(t.to_string());
    ASSERT_TRUE(std::holds_alternative<TypeSpec>(again));
    EXPECT_EQ(std::get<TypeSpec>(again), t);
  }
}

const ErrorCase kTypeErrors[] = {
    {"", 0, "empty data type"},
    {"  ", 0, "empty data type"},
    {"Float", 0,
     "unknown data type 'Float' (expected Bool, Byte, Char, Word, Int, DWord, DInt, Real, LReal, "
     "String[n], Timer, Counter or Text[n])"},
    {"IntX", 0,
     "unknown data type 'IntX' (expected Bool, Byte, Char, Word, Int, DWord, DInt, Real, LReal, "
     "String[n], Timer, Counter or Text[n])"},
    {"Int Real", 0,
     "unknown data type 'Int Real' (expected Bool, Byte, Char, Word, Int, DWord, DInt, Real, "
     "LReal, String[n], Timer, Counter or Text[n])"},
    {"  UInt", 2,
     "unknown data type 'UInt' (expected Bool, Byte, Char, Word, Int, DWord, DInt, Real, LReal, "
     "String[n], Timer, Counter or Text[n])"},
    {"String", 6, "missing '[' and string length after 'String'"},
    {"String(20)", 6, "expected '[' and string length after 'String', found '('"},
    {"String[]", 7, "expected string length after 'String[', found ']'"},
    {"String[0]", 7, "string length 0 out of range 1..254"},
    {"String[255]", 7, "string length 255 out of range 1..254"},
    {"String[-1]", 7, "sign '-' not allowed before string length"},
    {"String[20", 9, "missing ']' after 'String[20'"},
    {"String[20]x", 10, "trailing characters after data type 'String[20]': 'x'"},
    {"Text[0]", 5, "text length 0 out of range 1..255"},
    {"Text[256]", 5, "text length 256 out of range 1..255"},
    {"Text(4)", 4, "expected '[' and text length after 'Text', found '('"},
};

TEST(TypeSpecParse, RejectsBadNamesWithPositionAndReason) {
  for (const ErrorCase& c : kTypeErrors) {
    SCOPED_TRACE("input '" + std::string(c.text) + "'");
    auto result = TypeSpec::parse(c.text);
    const auto* error = std::get_if<ParseError>(&result);
    ASSERT_NE(error, nullptr) << "parsed as " << std::get<TypeSpec>(result).to_string();
    EXPECT_EQ(error->reason, c.reason);
    EXPECT_EQ(error->position, c.position);
  }
}

// ---------------------------------------------------------------------------------------------
// Which data types fit which addresses

struct FitCase {
  std::string_view address;
  TypeSpec type;
  std::optional<std::string_view> reason;  // nothing: it fits
};

const FitCase kFits[] = {
    {"M10.2", {DataType::Bool}, std::nullopt},
    {"DB1.DBX0.0", {DataType::Bool}, std::nullopt},
    {"DB1.DBB1", {DataType::Byte}, std::nullopt},
    {"IB1", {DataType::Char}, std::nullopt},
    {"MW4", {DataType::Word}, std::nullopt},
    {"DB1.DBW2", {DataType::Int}, std::nullopt},
    {"MD8", {DataType::DWord}, std::nullopt},
    {"QD4", {DataType::DInt}, std::nullopt},
    {"DB1.DBD4", {DataType::Real}, std::nullopt},
    {"DB1.LREAL8", {DataType::LReal}, std::nullopt},
    {"DB1.STRING10.20", {DataType::String, 20}, std::nullopt},
    {"T5", {DataType::Timer}, std::nullopt},
    {"C3", {DataType::Counter}, std::nullopt},

    {"MW4",
     {DataType::Real},
     "Real needs a dword address such as DB1.DBD0 or MD8; 'MW4' is a word address"},
    {"MB3",
     {DataType::Bool},
     "Bool needs a bit address such as DB1.DBX0.0 or M10.2; 'MB3' is a byte address"},
    {"M10.2",
     {DataType::Byte},
     "Byte needs a byte address such as DB1.DBB0 or MB3; 'M10.2' is a bit address"},
    {"DB1.DBW2",
     {DataType::Char},
     "Char needs a byte address such as DB1.DBB0 or MB3; 'DB1.DBW2' is a word address"},
    {"MD8",
     {DataType::Int},
     "Int needs a word address such as DB1.DBW0 or MW4; 'MD8' is a dword address"},
    {"DB1.LREAL8",
     {DataType::DInt},
     "DInt needs a dword address such as DB1.DBD0 or MD8; 'DB1.LREAL8' is an LREAL address"},
    {"MD8",
     {DataType::LReal},
     "LReal needs an LREAL address such as DB1.LREAL0; 'MD8' is a dword address"},
    {"DB1.DBW2",
     {DataType::String, 20},
     "String[20] needs a STRING address of length 20 such as DB1.STRING0.20; 'DB1.DBW2' is a word "
     "address"},
    {"DB1.STRING10.20",
     {DataType::String, 30},
     "String[30] needs a STRING address of length 30; 'DB1.STRING10.20' has length 20"},
    {"DB1.STRING10.20",
     {DataType::Char},
     "Char needs a byte address such as DB1.DBB0 or MB3; 'DB1.STRING10.20' is a STRING address"},
    {"DB1.STRING10.20",
     {DataType::String, 0},
     "String[0] is not a valid data type: string length 0 out of range 1..254"},
    {"T5", {DataType::Counter}, "Counter needs a counter such as C3; 'T5' is a timer"},
    {"C3", {DataType::Timer}, "Timer needs a timer such as T5; 'C3' is a counter"},
    {"MW4", {DataType::Timer}, "Timer needs a timer such as T5; 'MW4' is a word address"},
    {"T5", {DataType::Word}, "Word needs a word address such as DB1.DBW0 or MW4; 'T5' is a timer"},
    {"DB1.STRING0.40",
     {DataType::Text, 40},
     "Text[40] is for internal tags and has no PLC address; use String[n] at DB1.STRING0.n for "
     "text in the PLC"},
};

TEST(CheckFits, AcceptsMatchingPairsAndExplainsTheRest) {
  for (const FitCase& c : kFits) {
    SCOPED_TRACE(std::string(c.address) + " as " + c.type.to_string());
    const std::optional<std::string> reason = check_fits(parse_ok(c.address), c.type);
    if (c.reason) {
      ASSERT_TRUE(reason.has_value());
      EXPECT_EQ(*reason, *c.reason);
    } else {
      EXPECT_EQ(reason, std::nullopt);
    }
  }
}

struct DefaultTypeCase {
  std::string_view address;
  TypeSpec expected;
};

const DefaultTypeCase kDefaultTypes[] = {
    {"M10.2", {DataType::Bool}},
    {"DB1.DBB1", {DataType::Byte}},
    {"MW4", {DataType::Word}},
    {"ID4", {DataType::DWord}},
    {"DB1.STRING10.20", {DataType::String, 20}},
    {"DB1.LREAL8", {DataType::LReal}},
    {"T5", {DataType::Timer}},
    {"Z3", {DataType::Counter}},
};

TEST(DefaultType, FollowsTheAddressWidth) {
  for (const DefaultTypeCase& c : kDefaultTypes) {
    SCOPED_TRACE(std::string(c.address));
    EXPECT_EQ(default_type(parse_ok(c.address)), c.expected);
  }
}

TEST(DefaultType, AlwaysFitsItsAddress) {
  for (const Address& a : many_addresses()) {
    EXPECT_EQ(check_fits(a, default_type(a)), std::nullopt) << a.to_string();
  }
}

// ---------------------------------------------------------------------------------------------
// What the planner and the codec get

struct ReadTagCase {
  std::string_view address;
  Area area;
  std::uint16_t db;
  std::uint32_t offset;
  std::uint32_t size;
  std::optional<std::uint8_t> bit;
};

const ReadTagCase kReadTags[] = {
    {"DB1.DBX3.5", Area::data_block, 1, 3, 1, 5},
    {"M10.2", Area::flags, 0, 10, 1, 2},
    {"E0.0", Area::inputs, 0, 0, 1, 0},
    {"DB1.DBB1", Area::data_block, 1, 1, 1, std::nullopt},
    {"QB7", Area::outputs, 0, 7, 1, std::nullopt},
    {"MW4", Area::flags, 0, 4, 2, std::nullopt},
    {"DB7.DBW2", Area::data_block, 7, 2, 2, std::nullopt},
    {"ID4", Area::inputs, 0, 4, 4, std::nullopt},
    {"AD8", Area::outputs, 0, 8, 4, std::nullopt},
    {"DB2.STRING10.20", Area::data_block, 2, 10, 22, std::nullopt},
    {"DB2.STRING0.254", Area::data_block, 2, 0, 256, std::nullopt},
    {"DB1.LREAL8", Area::data_block, 1, 8, 8, std::nullopt},
    {"T5", Area::timers, 0, 5, 1, std::nullopt},
    {"C3", Area::counters, 0, 3, 1, std::nullopt},
};

TEST(ToReadTag, GivesAreaDbOffsetSizeAndBit) {
  for (const ReadTagCase& c : kReadTags) {
    SCOPED_TRACE(std::string(c.address));
    const channel::ReadTag tag = to_read_tag(parse_ok(c.address));
    EXPECT_EQ(tag.area, c.area);
    EXPECT_EQ(tag.db, c.db);
    EXPECT_EQ(tag.offset, c.offset);
    EXPECT_EQ(tag.size, c.size);
    EXPECT_EQ(tag.bit, c.bit);
  }
}

struct VarItemCase {
  std::string_view address;
  VarItem expected;
};

const VarItemCase kVarItems[] = {
    {"DB1.DBX3.5", {TransportSize::bit, 1, 1, Area::data_block, 3 * 8 + 5}},
    {"M10.2", {TransportSize::bit, 1, 0, Area::flags, 82}},
    {"Q0.1", {TransportSize::bit, 1, 0, Area::outputs, 1}},
    {"DB1.DBB1", {TransportSize::byte, 1, 1, Area::data_block, 8}},
    {"DB1.DBW2", {TransportSize::byte, 2, 1, Area::data_block, 16}},
    {"DB1.DBD4", {TransportSize::byte, 4, 1, Area::data_block, 32}},
    {"MD8", {TransportSize::byte, 4, 0, Area::flags, 64}},
    {"IW2", {TransportSize::byte, 2, 0, Area::inputs, 16}},
    {"DB1.STRING10.20", {TransportSize::byte, 22, 1, Area::data_block, 80}},
    {"DB1.LREAL8", {TransportSize::byte, 8, 1, Area::data_block, 64}},
    {"T5", {TransportSize::timer, 1, 0, Area::timers, 5}},
    {"C3", {TransportSize::counter, 1, 0, Area::counters, 3}},
    {"Z65535", {TransportSize::counter, 1, 0, Area::counters, 65535}},
    // The largest addresses still fit the 24-bit ADDR field.
    {"DB65535.DBX2097151.7", {TransportSize::bit, 1, 65535, Area::data_block, 0xFFFFFF}},
    {"MB2097151", {TransportSize::byte, 1, 0, Area::flags, 0xFFFFF8}},
};

TEST(ToVarItem, GivesTheItemForASingleReadOrWrite) {
  for (const VarItemCase& c : kVarItems) {
    SCOPED_TRACE(std::string(c.address));
    const VarItem item = to_var_item(parse_ok(c.address));
    EXPECT_EQ(item.transport, c.expected.transport);
    EXPECT_EQ(item.count, c.expected.count);
    EXPECT_EQ(item.db, c.expected.db);
    EXPECT_EQ(item.area, c.expected.area);
    EXPECT_EQ(item.address, c.expected.address);
  }
}

TEST(ToVarItem, EveryAddressFitsTheWire) {
  for (const Address& a : many_addresses()) {
    const VarItem item = to_var_item(a);
    EXPECT_LE(item.address, 0xFFFFFFu) << a.to_string();
    EXPECT_GE(item.count, 1u) << a.to_string();
    EXPECT_EQ(item.area, a.area) << a.to_string();
  }
}

}  // namespace
}  // namespace scada::tags
