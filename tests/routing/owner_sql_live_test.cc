// Router::OwnerSql against a live PostgreSQL 15: for thousands of keys of each type, the shard
// name the server computes from the expression must be the one Route() picks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "routing/key_value.h"
#include "routing/router.h"
#include "tests/routing/test_util.h"
#include "tests/support/pg_cluster.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::PgServer;
using testing::LoadMap;
using testing::ShardNames;
using testing::ThreeShards;

constexpr char kNull[] = "<null>";  // how a NULL owner reads in the aggregated answer

// The routers under test, all over s0, s1, s2.
const char kRouters[] =
    "    routers:\n"
    "      ring: {type: hash_ring, vnodes: 64}\n"
    "      ring_weighted: {type: hash_ring, vnodes: 64, weights: {s0: 3, s2: 2}}\n"
    "      ring_text: {type: hash_ring, vnodes: 64, key_type: text}\n"
    "      ring_uuid: {type: hash_ring, vnodes: 16, key_type: uuid}\n"
    "      modulo: {type: modulo}\n"
    "      modulo_text: {type: modulo, shards: [s2, s0, s1], key_type: text}\n"
    "      modulo_uuid: {type: modulo, key_type: uuid}\n"
    "      modulo_raw: {type: modulo, hash: none, shards: [s1, s2, s0]}\n"
    "      range_int: {type: range, default: s1, ranges: [{to: -1000, shard: s0},\n"
    "                  {from: -10, to: 10, shard: s2}, {from: 10, to: 500, shard: s0},\n"
    "                  {from: 4000000000, shard: s2}]}\n"
    "      range_int_strict: {type: range, ranges: [{from: -500, to: 0, shard: s1},\n"
    "                         {from: 0, to: 700, shard: s2}]}\n"
    "      range_text: {type: range, ranges: [{to: G, shard: s0}, {to: g, shard: s1},\n"
    "                   {to: \"o'neil\", shard: s2}, {from: p, to: \"\\xe9\", shard: s0}]}\n"
    "      directory_default: {type: directory, default: s2,\n"
    "                          entries: {1: s0, -7: s1, 9000000000: s0, 42: s1}}\n"
    "      directory_text: {type: directory,\n"
    "                       entries: {acme: s0, \"o'hara\": s1, 'back\\slash': s2, \"\": s1,\n"
    "                                 Zürich: s2, \"東京\": s0}}\n"
    "      directory_pinned: {type: directory, fallback: ring,\n"
    "                         entries: {1: s2, 42: s2, -7: s0}}\n"
    "      directory_pinned_text: {type: directory, fallback: ring_text,\n"
    "                              entries: {acme: s1, \"o'hara\": s2}}\n";

class OwnerSqlLive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = PgServer::StartPrimary("app");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    auto loaded = LoadMap(ThreeShards(kRouters));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    loaded_ = new testing::Loaded(*loaded);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete loaded_;
    loaded_ = nullptr;
  }

  // Evaluates router `name`'s OwnerSql over `keys` (values of SQL type `sql_type`) in one query,
  // through a column whose name needs quoting, and compares each answer with Route().
  static void Check(const std::string& name, const std::vector<KeyValue>& keys,
                    const std::string& sql_type) {
    const Router* router = loaded_->map->router(name);
    ASSERT_NE(router, nullptr) << name;
    std::vector<std::string> names = ShardNames(*loaded_->map);
    auto owner = router->OwnerSql("\"key col\"", names);
    ASSERT_TRUE(owner.ok()) << owner.status();
    std::string array = "ARRAY[";
    std::string expected;
    for (size_t i = 0; i < keys.size(); ++i) {
      array += (i ? "," : "") + owner_sql::Literal(keys[i]);
      auto key = ConvertKey(keys[i], router->key_type());
      ASSERT_TRUE(key.ok()) << key.status();
      auto shard = router->Route(*key);
      expected += (i ? "\n" : "") + (shard.ok() ? names[*shard] : std::string(kNull));
    }
    std::string sql = "SELECT string_agg(coalesce(" + *owner + ", '" + kNull +
                      "'), E'\\n' ORDER BY n) FROM unnest(" + array + "]::" + sql_type +
                      "[]) WITH ORDINALITY AS u(\"key col\", n)";
    auto result = server_->Query(sql);
    ASSERT_TRUE(result.ok()) << result.status() << "\n" << *owner;
    std::vector<std::string> got = Lines(*result), want = Lines(expected);
    ASSERT_EQ(got.size(), keys.size()) << name;
    // Keys that all land on one shard would prove little.
    EXPECT_NE(std::count(want.begin(), want.end(), want[0]), static_cast<long>(want.size()))
        << name;
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << name << " key " << keys[i].ToString() << "\n" << *owner;
    }
    // A NULL key has no owner (the proxy rejects NULL shard keys).
    auto null_owner = server_->Query("SELECT coalesce(" + *owner + ", '" + kNull +
                                     "') FROM (SELECT NULL::" + sql_type + " AS \"key col\") u");
    ASSERT_TRUE(null_owner.ok()) << null_owner.status();
    EXPECT_EQ(*null_owner, kNull) << name;
  }

  static std::vector<std::string> Lines(const std::string& s) {
    std::vector<std::string> out(1);
    for (char c : s) {
      if (c == '\n') {
        out.emplace_back();
      } else {
        out.back().push_back(c);
      }
    }
    return out;
  }

  static PgServer* server_;
  static testing::Loaded* loaded_;
};

PgServer* OwnerSqlLive::server_ = nullptr;
testing::Loaded* OwnerSqlLive::loaded_ = nullptr;

std::vector<KeyValue> Integers() {
  std::mt19937_64 rng(11);
  std::vector<int64_t> values = {0, 1, -1, 9, 10, -10, -11, 499, 500, -999, -1000, -1001, 42,
                                 -7, 9000000000LL, 3999999999LL, 4000000000LL,
                                 std::numeric_limits<int64_t>::max(),
                                 std::numeric_limits<int64_t>::min(), 4294967296LL,
                                 -4294967296LL, 2147483647LL, -2147483648LL};
  for (int i = 0; i < 1200; ++i) values.push_back(static_cast<int64_t>(rng()));
  for (int i = 0; i < 1200; ++i) values.push_back(static_cast<int64_t>(rng() % 3000) - 1500);
  std::vector<KeyValue> keys;
  for (int64_t v : values) keys.push_back(KeyValue::Int(v));
  return keys;
}

std::vector<KeyValue> Texts() {
  std::mt19937_64 rng(12);
  std::vector<std::string> values = {"", "a", "G", "F~", "g", "o'neil", "o'neik", "o'neil ",
                                     "p", "o~", "acme", "o'hara", "back\\slash", "Zürich",
                                     "東京", "é", "\xc3\xa8", "emoji 🎉", "tab\there", "42"};
  for (int i = 0; i < 2400; ++i) {
    std::string s;
    size_t len = rng() % 30;
    for (size_t j = 0; j < len; ++j) {
      // printable ASCII (quotes and backslashes included) and some UTF-8 characters
      switch (rng() % 10) {
        case 0: s += "é"; break;
        case 1: s += "東"; break;
        default: s.push_back(static_cast<char>(' ' + rng() % 95));
      }
    }
    values.push_back(s);
  }
  std::vector<KeyValue> keys;
  for (const std::string& v : values) keys.push_back(KeyValue::Text(v));
  return keys;
}

std::vector<KeyValue> Uuids() {
  std::mt19937_64 rng(13);
  std::vector<KeyValue> keys = {KeyValue::Uuid(std::string(16, '\0')),
                                KeyValue::Uuid(std::string(16, '\xff'))};
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(16, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    keys.push_back(KeyValue::Uuid(bytes));
  }
  return keys;
}

TEST_F(OwnerSqlLive, WidthBucketIsLowerBoundOnTheRingFact) {
  // lower_bound(h) = width_bucket(h - 1): the first of equal points, 5 (the ring's end) wraps.
  auto r = server_->Query(
      "SELECT string_agg((width_bucket(h - 1, '{1,5,5,5,9}'::numeric[]))::text, ',' "
      "ORDER BY h) FROM unnest('{0,1,2,5,6,9,10}'::numeric[]) h");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "0,0,1,1,4,4,5");
}

TEST_F(OwnerSqlLive, HashRings) {
  std::vector<KeyValue> ints = Integers();
  Check("ring", ints, "int8");
  Check("ring_weighted", ints, "int8");
  std::vector<KeyValue> int4s;  // an int4 column: its values hash as int8 ones do
  for (const KeyValue& k : ints) {
    if (k.int_value() == static_cast<int32_t>(k.int_value())) int4s.push_back(k);
  }
  Check("ring", int4s, "int4");
  Check("ring_text", Texts(), "text");
  Check("ring_text", ints, "int8");  // an integer column under a text key: its decimal text
  Check("ring_uuid", Uuids(), "uuid");
}

TEST_F(OwnerSqlLive, Modulo) {
  std::vector<KeyValue> ints = Integers();
  Check("modulo", ints, "int8");
  Check("modulo_text", Texts(), "text");
  Check("modulo_text", Texts(), "varchar");
  Check("modulo_uuid", Uuids(), "uuid");
  Check("modulo_raw", ints, "int8");
}

TEST_F(OwnerSqlLive, Ranges) {
  std::vector<KeyValue> ints = Integers();
  Check("range_int", ints, "int8");
  Check("range_int_strict", ints, "int8");
  Check("range_text", Texts(), "text");
}

TEST_F(OwnerSqlLive, Directories) {
  std::vector<KeyValue> ints = Integers();
  Check("directory_default", ints, "int8");
  Check("directory_text", Texts(), "text");
  // Keys pinned in front of a ring (how a hot key gets its own shard): entries, else the ring.
  Check("directory_pinned", ints, "int8");
  Check("directory_pinned_text", Texts(), "text");
}

}  // namespace
}  // namespace shardgate::routing
