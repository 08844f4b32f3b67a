#include "notify/webhook.h"

#include <gtest/gtest.h>

namespace onlined::notify {
namespace {

TEST(Webhook, TwilioSignatureOfTheDocumentedExample) {
  // The parameters of the example in the provider's webhook-security documentation.
  Form f = {{"CallSid", "CA1234567890ABCDE"},
            {"Caller", "+12349013030"},
            {"Digits", "1234"},
            {"From", "+12349013030"},
            {"To", "+18005551212"}};
  EXPECT_EQ(TwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", f),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");  // cross-checked with Python hmac
  EXPECT_TRUE(CheckTwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", f,
                                   "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
  EXPECT_FALSE(
      CheckTwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", f, "x"));
  EXPECT_FALSE(CheckTwilioSignature("54321", "https://mycompany.com/myapp.php?foo=1&bar=2", f,
                                    "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
}

TEST(Webhook, FormRoundTrip) {
  Form f;
  ASSERT_TRUE(ParseForm("Body=Hello+there%21&From=%2B15551234567&Empty=&Flag", f));
  EXPECT_EQ(FormValue(f, "Body"), "Hello there!");
  EXPECT_EQ(FormValue(f, "From"), "+15551234567");
  EXPECT_EQ(FormValue(f, "Empty"), "");
  Form g;
  ASSERT_TRUE(ParseForm(FormEncode(f), g));
  EXPECT_EQ(f, g);
  EXPECT_FALSE(ParseForm("a=%zz", f));
  EXPECT_FALSE(ParseForm("a=%4", f));
}

TEST(Webhook, Keywords) {
  for (const char* w :
       {"STOP", "stop", " Quit ", "END", "revoke", "OPT OUT", "cancel", "UNSUBSCRIBE"}) {
    EXPECT_EQ(OptInKeyword(w), false) << w;
  }
  EXPECT_EQ(OptInKeyword("start"), true);
  EXPECT_EQ(OptInKeyword("stop please"), std::nullopt);
  EXPECT_EQ(OptInKeyword("hello"), std::nullopt);
}

TEST(Webhook, StatusOnlyMovesForward) {
  EXPECT_LT(StatusRank("queued"), StatusRank("sent"));
  EXPECT_LT(StatusRank("sent"), StatusRank("delivered"));
  EXPECT_EQ(StatusRank("delivered"), StatusRank("undelivered"));
  EXPECT_EQ(StatusRank("bogus"), 0);
}

}  // namespace
}  // namespace onlined::notify
