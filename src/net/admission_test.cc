// Admission: the limits applied to sockets, handshakes and requests.
#include "net/admission.h"

#include <gtest/gtest.h>

namespace onlined::net {
namespace {

Admission::Address Addr(uint8_t last) {
  Admission::Address a{};
  a[10] = a[11] = 0xff;
  a[12] = 127;
  a[15] = last;
  return a;
}

TEST(Admission, CountsEverySocketAndEachAddress) {
  Admission a;
  a.SetLimits({.max_connections = 3, .max_per_ip = 2});
  Admission::Slot s1, s2, s3, s4;
  EXPECT_EQ(a.Admit(Addr(1), &s1), Admission::Verdict::kAdmitted);
  EXPECT_EQ(a.Admit(Addr(1), &s2), Admission::Verdict::kAdmitted);
  EXPECT_EQ(a.Admit(Addr(1), &s3), Admission::Verdict::kTooManyFromAddress);
  EXPECT_FALSE(s3);
  EXPECT_EQ(a.Admit(Addr(2), &s3), Admission::Verdict::kAdmitted);
  EXPECT_EQ(a.Admit(Addr(3), &s4), Admission::Verdict::kTooMany);
  EXPECT_EQ(a.open(), 3);
  s1.Release();
  EXPECT_EQ(a.open(), 2);
  EXPECT_EQ(a.Admit(Addr(1), &s4), Admission::Verdict::kAdmitted);
  // A slot moves with its socket (HTTP session to WebSocket) and is given
  // back once.
  Admission::Slot moved = std::move(s4);
  EXPECT_FALSE(s4);
  { Admission::Slot gone = std::move(moved); }
  EXPECT_EQ(a.open(), 2);
}

// An IPv6 client holds a /64 (2^64 addresses): the limit per address counts
// the /64, or one address per connection would pass it. IPv4 addresses
// count one by one.
TEST(Admission, AnIpv6SourceCountsByItsSlash64) {
  Admission::Address v6a{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  Admission::Address v6b = v6a;
  v6b[15] = 2;
  v6b[9] = 0x77;
  Admission::Address other = v6a;
  other[7] = 2;  // the next /64
  EXPECT_EQ(Admission::KeyOf(v6a), Admission::KeyOf(v6b));
  EXPECT_NE(Admission::KeyOf(v6a), Admission::KeyOf(other));
  EXPECT_EQ(Admission::KeyOf(Addr(1)), Addr(1));
  EXPECT_NE(Admission::KeyOf(Addr(1)), Admission::KeyOf(Addr(2)));

  Admission a;
  a.SetLimits({.max_connections = 10, .max_per_ip = 1});
  Admission::Slot s1, s2, s3;
  EXPECT_EQ(a.Admit(Admission::KeyOf(v6a), &s1), Admission::Verdict::kAdmitted);
  EXPECT_EQ(a.Admit(Admission::KeyOf(v6b), &s2), Admission::Verdict::kTooManyFromAddress);
  EXPECT_EQ(a.Admit(Admission::KeyOf(other), &s3), Admission::Verdict::kAdmitted);
}

TEST(Admission, HandshakeBucketRefills) {
  Admission a;
  a.SetLimits({.handshakes_per_s = 10, .handshake_burst = 3});
  EXPECT_TRUE(a.TakeHandshake(1000));
  EXPECT_TRUE(a.TakeHandshake(1000));
  EXPECT_TRUE(a.TakeHandshake(1000));
  EXPECT_FALSE(a.TakeHandshake(1000));
  EXPECT_FALSE(a.TakeHandshake(1050));  // half a token
  EXPECT_TRUE(a.TakeHandshake(1100));
  EXPECT_TRUE(a.TakeHandshake(5000));  // refilled to the burst, never beyond
  EXPECT_TRUE(a.TakeHandshake(5000));
  EXPECT_TRUE(a.TakeHandshake(5000));
  EXPECT_FALSE(a.TakeHandshake(5000));
}

TEST(Admission, PastTheRefusalBudgetSocketsAreRefusedAtAccept) {
  Admission a;
  a.SetLimits({.handshakes_per_s = 10, .handshake_burst = 2});
  Admission::Slot s;
  EXPECT_TRUE(a.TakeHandshake(1000));
  EXPECT_TRUE(a.TakeHandshake(1000));
  EXPECT_FALSE(a.TakeHandshake(1000));  // refused with 1013: budget 2
  EXPECT_FALSE(a.TakeHandshake(1000));
  EXPECT_EQ(a.Admit(Addr(1), &s, 1000), Admission::Verdict::kAdmitted);
  s.Release();
  EXPECT_FALSE(a.TakeHandshake(1000));  // the budget is spent: flooded
  EXPECT_EQ(a.Admit(Addr(1), &s, 1050), Admission::Verdict::kFlooded);  // no token yet
  EXPECT_EQ(a.Admit(Addr(1), &s, 1100),
            Admission::Verdict::kAdmitted);  // a token again: it may try
  s.Release();
  EXPECT_TRUE(a.TakeHandshake(1100));
  EXPECT_EQ(a.Admit(Addr(1), &s, 1100), Admission::Verdict::kFlooded);
  EXPECT_EQ(a.Admit(Addr(1), &s, 1000 + Admission::kFloodMs),
            Admission::Verdict::kAdmitted);  // over
}

TEST(Admission, UnlimitedByDefault) {
  Admission a;
  Admission::Slot s[100];
  for (auto& x : s) EXPECT_EQ(a.Admit(Addr(9), &x), Admission::Verdict::kAdmitted);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(a.TakeHandshake(0));
}

TEST(Admission, RequestsInFlightAreCapped) {
  Admission a;
  a.SetLimits({.max_http_in_flight = 2});
  EXPECT_TRUE(a.BeginRequest());
  EXPECT_TRUE(a.BeginRequest());
  EXPECT_FALSE(a.BeginRequest());
  a.EndRequest();
  EXPECT_TRUE(a.BeginRequest());
  EXPECT_EQ(a.in_flight(), 2);
}

}  // namespace
}  // namespace onlined::net
