// Robustness: thousands of random and mutated buffers (fixed seed, bounded loops) through every
// reader and parser. Nothing may crash or read outside its input, every view must point inside
// the input, and every error must be an 08P01 (or, for auth, a SQLSTATE-carrying status).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/auth.h"
#include "protocol/frame_reader.h"
#include "protocol/messages.h"
#include "protocol/status.h"
#include "tests/support/bytes.h"

namespace shardgate::protocol {
namespace {

using ::shardgate::testing::Body;
using ::shardgate::testing::Msg;
using ::shardgate::testing::Startup;
using ::shardgate::testing::Untyped;

constexpr int kRandomBuffers = 20000;
constexpr int kMutationsPerSeed = 400;

bool Within(std::string_view inner, std::string_view outer) {
  if (inner.empty()) return true;  // an empty view may point anywhere (e.g. a default)
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

// Counts failed checks instead of stopping, so one run reports every kind of breakage.
class Checker {
 public:
  void Expect(bool ok, std::string_view what, std::string_view input) {
    if (ok) return;
    if (++failures_ <= 10) {
      ADD_FAILURE() << what << " on input of " << input.size() << " bytes";
    }
  }
  template <typename T>
  void ExpectError08P01(const absl::StatusOr<T>& r, std::string_view input) {
    if (!r.ok()) Expect(SqlState(r.status()) == "08P01", "error without 08P01", input);
  }
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
};

void CheckBody(Checker& c, std::string_view body) {
  if (auto r = ParseQuery(body); r.ok()) {
    c.Expect(Within(r->sql, body), "Query view outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseParse(body); r.ok()) {
    c.Expect(Within(r->name, body) && Within(r->sql, body), "Parse view outside", body);
    c.Expect(r->param_types.size() * 4 <= body.size(), "Parse count beyond body", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseBind(body); r.ok()) {
    c.Expect(Within(r->portal, body) && Within(r->statement, body), "Bind name outside", body);
    for (const auto& p : r->params) c.Expect(!p || Within(*p, body), "Bind value outside", body);
    for (size_t i = 0; i < r->params.size(); ++i) {
      const int16_t f = r->ParamFormat(i);
      c.Expect(
          r->param_formats.empty() || f == r->param_formats[r->param_formats.size() == 1 ? 0 : i],
          "ParamFormat rule", body);
    }
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseDescribe(body); r.ok()) {
    c.Expect(Within(r->name, body) && (r->kind == 'S' || r->kind == 'P'), "Describe", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseClose(body); r.ok()) {
    c.Expect(Within(r->name, body), "Close view outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseExecute(body); r.ok()) {
    c.Expect(Within(r->portal, body), "Execute view outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParsePasswordMessage(body); r.ok()) {
    c.Expect(Within(*r, body), "password view outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseSaslInitialResponse(body); r.ok()) {
    c.Expect(Within(r->mechanism, body) && Within(r->data, body), "SASL view outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseAuthentication(body); r.ok()) {
    c.Expect(Within(r->data, body), "Authentication view outside", body);
    for (std::string_view m : SaslMechanisms(r->data)) {
      c.Expect(Within(m, body), "mechanism outside", body);
    }
  } else {
    c.ExpectError08P01(r, body);
  }
  c.ExpectError08P01(ParseBackendKeyData(body), body);
  if (auto r = ParseParameterStatus(body); r.ok()) {
    c.Expect(Within(r->name, body) && Within(r->value, body), "ParameterStatus outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  c.ExpectError08P01(ParseReadyForQuery(body), body);
  if (auto r = ParseCommandComplete(body); r.ok()) {
    c.Expect(Within(r->tag, body), "CommandComplete outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseErrorFields(body); r.ok()) {
    for (const auto& [code, v] : r->fields) c.Expect(Within(v, body), "error field outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseRowDescription(body); r.ok()) {
    for (const auto& f : r->fields) c.Expect(Within(f.name, body), "field name outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  if (auto r = ParseDataRow(body); r.ok()) {
    for (const auto& v : r->values) c.Expect(!v || Within(*v, body), "DataRow outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  c.ExpectError08P01(ParseCopyResponse(body), body);
  if (auto r = ParseNotification(body); r.ok()) {
    c.Expect(Within(r->channel, body) && Within(r->payload, body), "Notification outside", body);
  } else {
    c.ExpectError08P01(r, body);
  }
  Frame f;
  f.body = body;
  if (auto r = ParseStartupPacket(f); r.ok()) {
    for (const auto& [k, v] : r->startup.params) {
      c.Expect(Within(k, body) && Within(v, body), "startup param outside", body);
    }
  } else {
    c.ExpectError08P01(r, body);
  }
}

void CheckBuffer(Checker& c, std::string_view buf) {
  FrameResult r = ReadFrame(buf, 1 << 16);
  switch (r.status) {
    case FrameStatus::kFrame:
      c.Expect(Within(r.frame.whole, buf) && Within(r.frame.body, r.frame.whole) &&
                   r.frame.whole.size() == r.frame.body.size() + kHeaderSize &&
                   r.frame.whole.data() == buf.data(),
               "frame outside buffer", buf);
      CheckBody(c, r.frame.body);
      break;
    case FrameStatus::kNeedMore:
      c.Expect(r.need > buf.size(), "need not beyond buffer", buf);
      break;
    case FrameStatus::kError:
      c.Expect(SqlState(r.error) == "08P01", "frame error without 08P01", buf);
      break;
  }
  HeaderInfo h = PeekHeader(buf, 1 << 16);
  c.Expect(h.status == r.status ||
               (h.status == FrameStatus::kFrame && r.status == FrameStatus::kNeedMore),
           "PeekHeader disagrees", buf);
  FrameResult s = ReadStartupFrame(buf);
  if (s.status == FrameStatus::kFrame) {
    c.Expect(Within(s.frame.whole, buf) && Within(s.frame.body, buf), "startup frame outside", buf);
    if (auto p = ParseStartupPacket(s.frame); !p.ok()) c.ExpectError08P01(p, buf);
  } else if (s.status == FrameStatus::kError) {
    c.Expect(SqlState(s.error) == "08P01", "startup error without 08P01", buf);
  }
  CheckBody(c, buf);  // the raw buffer as a body too: parsers must not rely on the reader
}

std::string RandomBytes(std::mt19937& rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(rng), '\0');
  for (char& ch : s) ch = static_cast<char>(byte(rng));
  return s;
}

// One random edit: flip a bit, set a byte to an interesting value, truncate, insert or
// duplicate a span. Small values (0, 0xFF, 0x7F, 0x80) hit the length and count edges.
std::string Mutate(std::mt19937& rng, std::string s) {
  std::uniform_int_distribution<int> op(0, 5);
  auto pos = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n)(rng); };
  static constexpr char kInteresting[] = {'\0', '\x01', '\x7f', '\x80', '\xff', '\xfe'};
  switch (op(rng)) {
    case 0:
      if (!s.empty()) s[pos(s.size() - 1)] ^= static_cast<char>(1 << pos(7));
      break;
    case 1:
      if (!s.empty()) s[pos(s.size() - 1)] = kInteresting[pos(5)];
      break;
    case 2:
      s.resize(pos(s.size()));
      break;
    case 3:
      s.insert(pos(s.size()), 1, kInteresting[pos(5)]);
      break;
    case 4:
      if (!s.empty()) {
        const size_t at = pos(s.size() - 1);
        s.insert(pos(s.size()), s.substr(at, pos(8)));
      }
      break;
    default:
      if (!s.empty()) s.erase(pos(s.size() - 1), 1);
      break;
  }
  return s;
}

std::vector<std::string> Seeds() {
  return {
      Msg('Q', Body().CStr("select 1")),
      Msg('P', Body().CStr("s1").CStr("select $1").Int16(1).UInt32(23)),
      Msg('B',
          Body().CStr("").CStr("s1").Int16(1).Int16(1).Int16(2).Value("42").Null().Int16(1).Int16(
              0)),
      Msg('D', Body().Char('S').CStr("s1")),
      Msg('E', Body().CStr("").Int32(0)),
      Msg('C', Body().Char('P').CStr("p")),
      Msg('p', Body().CStr("SCRAM-SHA-256").Value("n,,n=,r=abc")),
      Msg('R', Body().Int32(10).CStr("SCRAM-SHA-256").Int8(0)),
      Msg('R', Body().Int32(5).Raw("salt")),
      Msg('K', Body().Int32(1).Int32(2)),
      Msg('S', Body().CStr("client_encoding").CStr("UTF8")),
      Msg('Z', "I"),
      Msg('C', Body().CStr("SELECT 1")),
      Msg('E', Body().Char('S').CStr("ERROR").Char('C').CStr("42P01").Char('M').CStr("m").Int8(0)),
      Msg('T',
          Body().Int16(1).CStr("id").UInt32(1).Int16(1).UInt32(23).Int16(4).Int32(-1).Int16(0)),
      Msg('D', Body().Int16(2).Value("1").Null()),
      Msg('G', Body().Int8(0).Int16(2).Int16(0).Int16(0)),
      Msg('A', Body().Int32(7).CStr("chan").CStr("payload")),
      Startup({{"user", "u"}, {"database", "d"}}),
      Untyped(Body().UInt32(kCancelRequestCode).Int32(1).Int32(2)),
      Untyped(Body().UInt32(kSslRequestCode)),
  };
}

TEST(RandomBytesTest, RandomBuffersNeverBreakTheCodec) {
  std::mt19937 rng(20240501);
  Checker c;
  for (int i = 0; i < kRandomBuffers; ++i) CheckBuffer(c, RandomBytes(rng, i % 2 ? 16 : 96));
  EXPECT_EQ(c.failures(), 0);
}

TEST(RandomBytesTest, MutatedMessagesNeverBreakTheCodec) {
  std::mt19937 rng(7);
  Checker c;
  for (const std::string& seed : Seeds()) {
    CheckBuffer(c, seed);
    std::string cur = seed;
    for (int i = 0; i < kMutationsPerSeed; ++i) {
      // Mostly one edit from the seed, sometimes a walk of several, to go deeper.
      cur = Mutate(rng, i % 4 == 0 ? cur : seed);
      CheckBuffer(c, cur);
      // Every prefix of a frame's buffer must be need-more or the same frame.
      if (i % 50 == 0) {
        for (size_t n = 0; n <= cur.size(); ++n) CheckBuffer(c, std::string_view(cur).substr(0, n));
      }
    }
  }
  EXPECT_EQ(c.failures(), 0);
}

TEST(RandomBytesTest, MutatedScramMessages) {
  std::mt19937 rng(99);
  Checker c;
  // A low-iteration verifier keeps the many key derivations cheap.
  const std::string verifier = MakeScramVerifier("pw", 2, "salt");
  const std::string first = "n,,n=,r=clientnonce";
  for (int i = 0; i < 300; ++i) {
    ScramServer server(verifier);
    const std::string mutated_first = Mutate(rng, first);
    auto sf = server.HandleClientFirst(mutated_first);
    if (!sf.ok()) {
      c.Expect(!SqlState(sf.status()).empty() && SqlState(sf.status()) != "XX000",
               "client-first error without SQLSTATE", mutated_first);
      continue;
    }
    ScramClient client("pw", "clientnonce");
    client.ClientFirst();
    auto cf = client.HandleServerFirst(Mutate(rng, *sf));
    std::string final_msg = cf.ok() ? *cf : "c=biws,r=x,p=AAAA";
    auto fin = server.HandleClientFinal(Mutate(rng, final_msg));
    if (!fin.ok()) {
      const std::string st = SqlState(fin.status());
      c.Expect(st == "08P01" || st == "28P01", "client-final error SQLSTATE", final_msg);
    } else {
      (void)client.VerifyServerFinal(Mutate(rng, *fin));
    }
  }
  EXPECT_EQ(c.failures(), 0);
}

}  // namespace
}  // namespace shardgate::protocol
