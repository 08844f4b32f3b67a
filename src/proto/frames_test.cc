#include "proto/frames.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <charconv>
#include <limits>

#include "proto/json_writer.h"

namespace onlined::proto {
namespace {

bool Parse(std::string_view s, ClientFrame& f, FrameError& e) { return ParseClientFrame(s, f, e); }

TEST(Frames, Hello) {
  ClientFrame f;
  FrameError e;
  ASSERT_TRUE(Parse(R"({"type":"hello","token":"t","resume":{"c1":7},"presence_after":12})", f, e))
      << e.message;
  EXPECT_EQ(f.type, FrameType::kHello);
  EXPECT_EQ(f.token, "t");
  ASSERT_EQ(f.resume.size(), 1u);
  EXPECT_EQ(f.resume[0].first, "c1");
  EXPECT_EQ(f.resume[0].second, 7);
  EXPECT_EQ(f.presence_after, 12);
}

TEST(Frames, PingFastPathAndSpacedPing) {
  ClientFrame f;
  FrameError e;
  EXPECT_TRUE(IsCanonicalPing(R"({"type":"ping"})"));
  ASSERT_TRUE(Parse(R"( { "type" : "ping" } )", f, e));
  EXPECT_EQ(f.type, FrameType::kPing);
}

TEST(Frames, AckReadSendState) {
  ClientFrame f;
  FrameError e;
  ASSERT_TRUE(Parse(R"({"type":"ack","chat_id":"c","seq":7})", f, e));
  EXPECT_EQ(f.type, FrameType::kAck);
  EXPECT_EQ(f.seq, 7);
  ASSERT_TRUE(Parse(R"({"type":"read","chat_id":"c","seq":0})", f, e));
  EXPECT_EQ(f.type, FrameType::kRead);
  ASSERT_TRUE(Parse(R"({"type":"send","client_msg_id":"u1","text":"hi"})", f, e));
  EXPECT_EQ(f.type, FrameType::kSend);
  EXPECT_EQ(f.chat_id, "");
  EXPECT_EQ(f.text, "hi");
  ASSERT_TRUE(Parse(R"({"type":"state","state":"idle"})", f, e));
  EXPECT_TRUE(f.idle);
}

TEST(Frames, RefreshCarriesAToken) {
  ClientFrame f;
  FrameError e;
  ASSERT_TRUE(Parse(R"({"type":"refresh","token":"a.b.c"})", f, e)) << e.message;
  EXPECT_EQ(f.type, FrameType::kRefresh);
  EXPECT_EQ(f.token, "a.b.c");
  EXPECT_FALSE(Parse(R"({"type":"refresh"})", f, e));
  EXPECT_EQ(e.code, "bad_frame");
  EXPECT_FALSE(Parse(R"({"type":"refresh","token":7})", f, e));
  auto w = boost::json::parse(EncodeWelcome("s1", 25, 62500, std::nullopt, 1795000000000));
  EXPECT_EQ(w.at("expires_at").as_int64(), 1795000000000);
  EXPECT_FALSE(
      boost::json::parse(EncodeWelcome("s1", 25, 62500, 7u)).as_object().contains("expires_at"));
  auto r = boost::json::parse(EncodeRefreshed(1795000000000));
  EXPECT_EQ(r.at("type").as_string(), "refreshed");
  EXPECT_EQ(r.at("expires_at").as_int64(), 1795000000000);
}

TEST(Frames, Refusals) {
  ClientFrame f;
  FrameError e;
  EXPECT_FALSE(Parse("{nope", f, e));
  EXPECT_EQ(e.code, "bad_json");
  EXPECT_FALSE(Parse("[1,2]", f, e));
  EXPECT_EQ(e.code, "bad_frame");
  EXPECT_FALSE(Parse(R"({"type":"dance"})", f, e));
  EXPECT_EQ(e.code, "unknown_type");
  EXPECT_FALSE(Parse(R"({"type":"ack","chat_id":"c","seq":-1})", f, e));
  EXPECT_EQ(e.code, "bad_frame");
  EXPECT_FALSE(Parse(R"({"type":"ack","chat_id":"c","seq":1.5})", f, e));
  EXPECT_FALSE(Parse(R"({"type":"hello"})", f, e));
  EXPECT_NE(e.message.find("token"), std::string::npos);
  EXPECT_FALSE(Parse(R"({"type":"state","state":"asleep"})", f, e));
  EXPECT_FALSE(Parse(R"({"type":7})", f, e));
  EXPECT_FALSE(Parse(R"([[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]])", f, e));
}

// A NUL would end the string early where a C string carries it (the
// PostgreSQL engine): "a\u0000b" would be stored as "a".
TEST(Frames, NoStringFieldMayHoldANul) {
  ClientFrame f;
  FrameError e;
  for (const char* frame : {
           R"({"type":"send","client_msg_id":"m1","text":"a\u0000b"})",
           R"({"type":"send","client_msg_id":"m\u00001","text":"ab"})",
           R"({"type":"send","chat_id":"c\u0000","client_msg_id":"m1","text":"ab"})",
           R"({"type":"ack","chat_id":"c\u0000d","seq":1})",
           R"({"type":"hello","token":"t","resume":{"c\u0000":1}})",
       }) {
    EXPECT_FALSE(Parse(frame, f, e)) << frame;
    EXPECT_EQ(e.code, "bad_frame") << frame;
  }
  EXPECT_TRUE(Parse(R"({"type":"send","client_msg_id":"m1","text":"a\u0001b"})", f, e));
  EXPECT_EQ(f.text, std::string("a\x01"
                                "b"));
}

TEST(Frames, EncodedFramesAreValidJson) {
  std::string evil = "a\"b\\c\n\x01\xff\xc3\xa9";
  for (const std::string& s :
       {EncodeWelcome("s1", 25, 62500, 7u), EncodeWelcome("s1", 25, 62500, std::nullopt),
        EncodeError("bad_json", evil), EncodePresence(evil, true, 123, true, 9),
        EncodePresence("u", false, 0, false, 10), EncodePresenceReset(5),
        EncodeHttpError("x", evil)}) {
    boost::system::error_code ec;
    boost::json::parse(s, ec);
    EXPECT_FALSE(ec) << s;
  }
  auto v = boost::json::parse(EncodePresence("u", false, 0, false, 10));
  EXPECT_TRUE(v.at("last_seen").is_null());
  EXPECT_EQ(v.at("event_seq").as_int64(), 10);
  EXPECT_EQ(v.at("type").as_string(), "presence");
}

TEST(JsonWriter, EscapesAndRepairsUtf8) {
  std::string out;
  AppendJsonString(out, "\xe2\x82\xac ok \xed\xa0\x80");  // euro sign, then a lone surrogate
  EXPECT_EQ(out, "\"\xe2\x82\xac ok \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

// WriteInt must give std::to_chars's text for every value: each length from 1
// to 19 digits at its edges (9..9, 10..0, 10..01), both signs, the extremes,
// and a spread of values in between.
TEST(JsonWriter, WriteIntMatchesToChars) {
  auto check = [](int64_t v) {
    char want[24];
    char got[kMaxIntChars];
    const std::string_view w(want,
                             static_cast<size_t>(std::to_chars(want, want + 24, v).ptr - want));
    const std::string_view g(got, static_cast<size_t>(WriteInt(got, v) - got));
    ASSERT_EQ(g, w) << v;
  };
  check(0);
  check(std::numeric_limits<int64_t>::max());
  check(std::numeric_limits<int64_t>::min());
  int64_t p10 = 1;
  for (int digits = 1; digits <= 18; ++digits, p10 *= 10) {
    for (int64_t v : {p10 - 1, p10, p10 + 1, p10 * 10 - 1, p10 * 5 + 7}) {
      check(v);
      check(-v);
    }
  }
  uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift: every magnitude, every digit pattern
  for (int i = 0; i < 200000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const auto v = static_cast<int64_t>(x >> (i % 64));
    check(v);
    if (v != std::numeric_limits<int64_t>::min()) check(-v);
  }
}

TEST(QueryBody, TheUsualShapeIsScannedInPlace) {
  std::vector<std::string_view> ids;
  ASSERT_TRUE(ScanUserIds(R"({"user_ids":["alice","bob"]})", ids));
  EXPECT_EQ(ids, (std::vector<std::string_view>{"alice", "bob"}));
  ASSERT_TRUE(ScanUserIds(" {\n \"user_ids\" :\t[ \"a b\" ,\r\n\"\" ] } \n", ids));
  EXPECT_EQ(ids, (std::vector<std::string_view>{"a b", ""}));  // the caller refuses ""
  ASSERT_TRUE(ScanUserIds(R"({"user_ids":[]})", ids));
  EXPECT_TRUE(ids.empty());
}

TEST(QueryBody, AnythingElseGoesToTheFullParser) {
  std::vector<std::string_view> ids;
  for (std::string_view body : {
           R"({"user_ids":["\u0061"]})",           // an escape
           "{\"user_ids\":[\"zo\xc3\xab\"]}",      // UTF-8 to validate
           "{\"user_ids\":[\"a\x01\"]}",           // a control byte
           R"({"x":1,"user_ids":["a"]})",          // another key
           R"({"user_ids":["a"],"x":1})",          //
           R"({"user_ids":["a",]})",               // syntax errors
           R"({"user_ids":["a"]} x)",              //
           R"({"user_ids":["a")",                  //
           R"({"user_ids":[1]})",                  // not a string
           R"({"user_ids":"a"})",                  //
           R"({"user_ids":["a""b"]})",             //
           "",                                     //
           "{",                                    //
           R"({"user_ids":["a","b\u0062"]})",      // ids before an escape
           R"({"user_ids":["a"],"user_ids":[]})",  // the parser keeps the last
       }) {
    ids = {"left", "from before"};
    EXPECT_FALSE(ScanUserIds(body, ids)) << body;
    // The full parse's ids are appended to `ids`: none may be left here.
    EXPECT_TRUE(ids.empty()) << body;
  }
}

}  // namespace
}  // namespace onlined::proto
