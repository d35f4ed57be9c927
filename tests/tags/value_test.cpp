// Values of every data type (DESIGN.md §6): the PLC's bytes (byte vectors written out by hand
// from the S7 formats), round trips, range checks with their messages, and text from people.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <variant>

#include "tags/tags.h"

namespace scada::tags {
namespace {

using channel::Bytes;

TypeSpec T(std::string_view text) {
  return std::get<TypeSpec>(TypeSpec::parse(text));
}

Value decoded(std::string_view type, const Bytes& bytes) {
  auto r = decode_value(T(type), bytes);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << type << ": " << *e;
    return Value(false);
  }
  return std::get<Value>(r);
}

Bytes encoded(std::string_view type, const Value& v) {
  auto r = encode_value(T(type), v);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << type << " " << value_to_string(v) << ": " << *e;
    return {};
  }
  return std::get<Bytes>(r);
}

std::string refusal(std::string_view type, const Value& v) {
  auto r = encode_value(T(type), v);
  if (auto* e = std::get_if<std::string>(&r)) return *e;
  ADD_FAILURE() << type << " " << value_to_string(v) << " was accepted";
  return {};
}

struct Vector {
  const char* type;
  Value value;
  Bytes bytes;
};

TEST(Values, ByteVectorsOfEveryTypeBothWays) {
  const Vector vectors[] = {
      {"Bool", Value(true), {0x01}},
      {"Bool", Value(false), {0x00}},
      {"Byte", Value(std::int64_t(0xA5)), {0xA5}},
      {"Word", Value(std::int64_t(0xBEEF)), {0xBE, 0xEF}},
      {"DWord", Value(std::int64_t(0xDEADBEEF)), {0xDE, 0xAD, 0xBE, 0xEF}},
      {"Int", Value(std::int64_t(-2)), {0xFF, 0xFE}},
      {"Int", Value(std::int64_t(-32768)), {0x80, 0x00}},
      {"DInt", Value(std::int64_t(-100000)), {0xFF, 0xFE, 0x79, 0x60}},
      {"Real", Value(1.5), {0x3F, 0xC0, 0x00, 0x00}},
      {"Real", Value(-0.25), {0xBE, 0x80, 0x00, 0x00}},
      {"LReal", Value(3.141592653589793), {0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18}},
      {"Char", Value(std::string("A")), {0x41}},
      {"Char", Value(std::string("\xC3\xA4")), {0xE4}},  // ä
      {"String[5]", Value(std::string("ab")), {0x05, 0x02, 'a', 'b', 0, 0, 0}},
      {"String[3]",
       Value(std::string("S\xC3\xBC"
                         "d")),
       {0x03, 0x03, 'S', 0xFC, 'd'}},  // Süd
      {"String[4]", Value(std::string("")), {0x04, 0x00, 0, 0, 0, 0}},
      {"Timer", Value(std::int64_t(1230)), {0x01, 0x23}},     // 123 x 10 ms
      {"Timer", Value(std::int64_t(12300)), {0x11, 0x23}},    // 123 x 100 ms
      {"Timer", Value(std::int64_t(9990000)), {0x39, 0x99}},  // 999 x 10 s
      {"Counter", Value(std::int64_t(999)), {0x09, 0x99}},
      {"Counter", Value(std::int64_t(42)), {0x00, 0x42}},
  };
  for (const Vector& v : vectors) {
    SCOPED_TRACE(std::string(v.type) + " " + value_to_string(v.value));
    EXPECT_EQ(encoded(v.type, v.value), v.bytes);
    EXPECT_EQ(decoded(v.type, v.bytes), v.value);
  }
}

TEST(Values, DecodingWhatEncodingNeverWrites) {
  // A String whose current length fills only part of the buffer, with junk after it.
  EXPECT_EQ(decoded("String[4]", {0x04, 0x01, 'x', 'y', 'z', 0x7F}), Value(std::string("x")));
  // The PLC's maximum may be smaller than the tag's n.
  EXPECT_EQ(decoded("String[4]", {0x02, 0x02, 'o', 'k', 0, 0}), Value(std::string("ok")));
  // Timers the PLC wrote with a coarser base than needed.
  EXPECT_EQ(decoded("Timer", {0x20, 0x05}), Value(std::int64_t(5000)));
  // Real NaN and infinity come through as such.
  EXPECT_TRUE(std::isnan(std::get<double>(decoded("Real", {0x7F, 0xC0, 0x00, 0x00}))));
  EXPECT_TRUE(std::isinf(std::get<double>(decoded("Real", {0x7F, 0x80, 0x00, 0x00}))));
}

TEST(Values, BytesThatAreNoValueOfTheType) {
  const auto why = [](std::string_view type, const Bytes& b) {
    auto r = decode_value(T(type), b);
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "";
  };
  EXPECT_NE(why("Word", {0x01}).find("takes 2 bytes, got 1"), std::string::npos);
  EXPECT_NE(why("Bool", {0x02}).find("0 or 1"), std::string::npos);
  EXPECT_NE(why("String[4]", {0x04, 0x05, 'a', 'b', 'c', 'd'}).find("more than its maximum"),
            std::string::npos);
  EXPECT_NE(why("String[4]", {0x02, 0x03, 'a', 'b', 'c', 'd'}).find("more than its maximum 2"),
            std::string::npos);
  EXPECT_NE(why("Timer", {0x01, 0xA0}).find("not BCD"), std::string::npos);
  EXPECT_NE(why("Counter", {0x10, 0x01}).find("not BCD"), std::string::npos);
}

TEST(Values, RangeAndKindRefusalsSayWhatDoesNotFit) {
  EXPECT_EQ(refusal("Word", Value(std::int64_t(70000))), "70000 does not fit Word (0..65535)");
  EXPECT_EQ(refusal("Byte", Value(std::int64_t(-1))), "-1 does not fit Byte (0..255)");
  EXPECT_EQ(refusal("Int", Value(std::int64_t(32768))), "32768 does not fit Int (-32768..32767)");
  EXPECT_NE(refusal("DInt", Value(std::int64_t(1) << 31)).find("does not fit DInt"),
            std::string::npos);
  EXPECT_NE(refusal("DWord", Value(std::int64_t(1) << 32)).find("does not fit DWord"),
            std::string::npos);
  EXPECT_EQ(refusal("Int", Value(1.5)), "a number with a fraction does not fit Int");
  EXPECT_EQ(refusal("Int", Value(std::string("7"))), "text does not fit Int");
  EXPECT_EQ(refusal("Bool", Value(std::int64_t(1))), "an integer does not fit Bool");
  EXPECT_NE(refusal("Real", Value(1e39)).find("outside the range of Real"), std::string::npos);
  EXPECT_NE(refusal("String[2]", Value(std::string("abc"))).find("3 characters, more than"),
            std::string::npos);
  EXPECT_NE(refusal("String[8]", Value(std::string("\xE2\x82\xAC"))).find("outside Latin-1"),
            std::string::npos);  // €
  EXPECT_NE(refusal("Char", Value(std::string("ab"))).find("exactly one character"),
            std::string::npos);
  EXPECT_NE(refusal("Timer", Value(std::int64_t(1234))).find("cannot be held exactly"),
            std::string::npos);
  EXPECT_NE(refusal("Timer", Value(std::int64_t(9990010))).find("does not fit Timer"),
            std::string::npos);
  EXPECT_NE(refusal("Counter", Value(std::int64_t(1000))).find("does not fit Counter"),
            std::string::npos);
  // Integers are fine for Real and LReal.
  EXPECT_EQ(encoded("Real", Value(std::int64_t(2))), (Bytes{0x40, 0x00, 0x00, 0x00}));
}

Value parsed(std::string_view type, std::string_view text) {
  auto r = parse_value(T(type), text);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << type << " '" << text << "': " << *e;
    return Value(false);
  }
  return std::get<Value>(r);
}

std::string parse_refusal(std::string_view type, std::string_view text) {
  auto r = parse_value(T(type), text);
  if (auto* e = std::get_if<std::string>(&r)) return *e;
  ADD_FAILURE() << type << " '" << text << "' accepted";
  return {};
}

TEST(Values, TextFromPeopleAndScripts) {
  EXPECT_EQ(parsed("Bool", " TRUE "), Value(true));
  EXPECT_EQ(parsed("Bool", "off"), Value(false));
  EXPECT_EQ(parsed("Bool", "1"), Value(true));
  EXPECT_EQ(parsed("Int", "-123"), Value(std::int64_t(-123)));
  EXPECT_EQ(parsed("Int", "+7"), Value(std::int64_t(7)));
  EXPECT_EQ(parsed("Word", "16#BEEF"), Value(std::int64_t(0xBEEF)));
  EXPECT_EQ(parsed("DWord", "0xdeadbeef"), Value(std::int64_t(0xDEADBEEF)));
  EXPECT_EQ(parsed("Real", "2.5e-3"), Value(double(2.5e-3f)));
  EXPECT_EQ(parsed("Real", "5.2"), Value(double(5.2f)));  // as the PLC will hold it
  EXPECT_EQ(parsed("LReal", "5.2"), Value(5.2));
  EXPECT_EQ(parsed("LReal", "-1"), Value(-1.0));
  EXPECT_EQ(parsed("String[12]", "  two words "), Value(std::string("  two words ")));
  EXPECT_EQ(parsed("Char", "Z"), Value(std::string("Z")));
  EXPECT_EQ(parsed("Timer", "1500"), Value(std::int64_t(1500)));
  EXPECT_EQ(parsed("Timer", "1.5s"), Value(std::int64_t(1500)));
  EXPECT_EQ(parsed("Timer", "2min"), Value(std::int64_t(120000)));
  EXPECT_EQ(parsed("Timer", "250ms"), Value(std::int64_t(250)));
  EXPECT_EQ(parsed("Counter", "12"), Value(std::int64_t(12)));

  EXPECT_NE(parse_refusal("Bool", "yes").find("not a Bool"), std::string::npos);
  EXPECT_NE(parse_refusal("Int", "12abc").find("not a whole number"), std::string::npos);
  EXPECT_NE(parse_refusal("Int", "1.5").find("not a whole number"), std::string::npos);
  EXPECT_NE(parse_refusal("Int", "").find("no value given"), std::string::npos);
  EXPECT_EQ(parse_refusal("Word", "70000"), "70000 does not fit Word (0..65535)");
  EXPECT_NE(parse_refusal("DInt", "99999999999999999999").find("not a whole number"),
            std::string::npos);
  EXPECT_NE(parse_refusal("Real", "1,5").find("not a number"), std::string::npos);
  EXPECT_NE(parse_refusal("Timer", "1.5h").find("unknown time unit"), std::string::npos);
  EXPECT_NE(parse_refusal("Timer", "1.234s").find("cannot be held exactly"), std::string::npos);
  EXPECT_NE(parse_refusal("String[2]", "abc").find("more than String[2]"), std::string::npos);
}

TEST(Values, ValueText) {
  EXPECT_EQ(value_to_string(Value(true)), "true");
  EXPECT_EQ(value_to_string(Value(std::int64_t(-5))), "-5");
  EXPECT_EQ(value_to_string(Value(0.1)), "0.1");
  EXPECT_EQ(value_to_string(Value(std::string("x y"))), "x y");
  // A Real is a float: shown as the float, not as the double that holds it.
  const TypeSpec real{DataType::Real};
  EXPECT_EQ(value_to_string(real, Value(double(5.2f))), "5.2");
  EXPECT_EQ(value_to_string(Value(double(5.2f))), "5.199999809265137");
  EXPECT_EQ(value_to_string(TypeSpec{DataType::LReal}, Value(5.2)), "5.2");
  EXPECT_EQ(value_to_string(real, Value(std::int64_t(3))), "3");
}

TEST(Values, ZeroValues) {
  EXPECT_EQ(zero_value({DataType::Bool}), Value(false));
  EXPECT_EQ(zero_value({DataType::DInt}), Value(std::int64_t(0)));
  EXPECT_EQ(zero_value({DataType::Timer}), Value(std::int64_t(0)));
  EXPECT_EQ(zero_value({DataType::Real}), Value(0.0));
  EXPECT_EQ(zero_value({DataType::String, 10}), Value(std::string()));
  EXPECT_EQ(zero_value({DataType::Text, 255}), Value(std::string()));
}

// Text[n] is for internal tags: UTF-8 of at most n characters (not bytes).
TEST(Values, TextOfInternalTags) {
  const TypeSpec text{DataType::Text, 5};
  EXPECT_EQ(parsed("Text[5]", "Größe"), Value(std::string("Größe")));
  EXPECT_EQ(parsed("Text[5]", "€€€€€"), Value(std::string("€€€€€")));
  EXPECT_EQ(parse_refusal("Text[5]", "sechs!"),
            "the text has 6 characters, more than Text[5] holds");
  EXPECT_EQ(parse_refusal("Text[5]", "a\xC3"), "the text is not UTF-8: byte 2 is not valid UTF-8");
  EXPECT_EQ(parse_refusal("Text[5]", "\xC0\x80"),
            "the text is not UTF-8: byte 1 is not valid UTF-8");
  EXPECT_EQ(parse_refusal("Text[5]", "\xED\xA0\x80"),
            "the text is not UTF-8: byte 1 is not valid UTF-8");  // a surrogate
  auto bytes = encode_value(text, Value(std::string("ab")));
  ASSERT_TRUE(std::holds_alternative<Bytes>(bytes));
  EXPECT_EQ(std::get<Bytes>(bytes), (Bytes{'a', 'b'}));
  auto back = decode_value(text, std::get<Bytes>(bytes));
  ASSERT_TRUE(std::holds_alternative<Value>(back));
  EXPECT_EQ(std::get<Value>(back), Value(std::string("ab")));
  const Bytes seven(7, 'x');
  EXPECT_TRUE(std::holds_alternative<std::string>(decode_value(text, seven)));
  EXPECT_TRUE(std::holds_alternative<std::string>(encode_value(text, Value(std::int64_t(1)))));
}

}  // namespace
}  // namespace scada::tags
