// The partition hash against a live PostgreSQL 15: for thousands of values of each key type,
// our remainder must be the one satisfies_hash_partition() accepts.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "routing/key_value.h"
#include "routing/pg_hash.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::PgServer;

class PgHashLive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = PgServer::StartPrimary("app");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    for (const char* ddl :
         {"CREATE TABLE t8 (k bigint) PARTITION BY HASH (k)",
          "CREATE TABLE t4 (k int4) PARTITION BY HASH (k)",
          "CREATE TABLE t2 (k int2) PARTITION BY HASH (k)",
          "CREATE TABLE tt (k text) PARTITION BY HASH (k)",
          "CREATE TABLE tv (k varchar) PARTITION BY HASH (k)",
          "CREATE TABLE tu (k uuid) PARTITION BY HASH (k)"}) {
      auto r = server_->Query(ddl);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // Asks the server, in one query, which of `literals` (SQL expressions of the table's key
  // type) satisfy (modulus, remainder) and checks that they are exactly ours.
  static void Check(const std::string& table, const std::string& type,
                    const std::vector<std::string>& literals, const std::vector<KeyValue>& keys,
                    uint64_t modulus) {
    ASSERT_EQ(literals.size(), keys.size());
    // One row per value: its index and the first remainder PostgreSQL accepts.
    std::string values;
    for (size_t i = 0; i < literals.size(); ++i) {
      values += (i ? "," : "") + std::string("(") + std::to_string(i) + "," + literals[i] +
                "::" + type + ")";
    }
    std::string sql =
        "SELECT string_agg(i::text || ':' || r::text, ',' ORDER BY i) FROM (VALUES " + values +
        ") AS v(i, k), LATERAL (SELECT r FROM generate_series(0, " +
        std::to_string(modulus - 1) + ") r WHERE satisfies_hash_partition('" + table +
        "'::regclass, " + std::to_string(modulus) + ", r, k) LIMIT 1) AS x";
    auto result = server_->Query(sql);
    ASSERT_TRUE(result.ok()) << result.status();
    std::string expected;
    for (size_t i = 0; i < keys.size(); ++i) {
      expected += (i ? "," : "") + std::to_string(i) + ":" +
                  std::to_string(PartitionRemainder(keys[i], modulus));
    }
    EXPECT_EQ(*result, expected) << table;
  }

  static PgServer* server_;
};

PgServer* PgHashLive::server_ = nullptr;

std::string SqlString(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? "''" : std::string(1, c);
  return out + "'";
}

TEST_F(PgHashLive, BigintZeroToNineModulusThreeFact) {
  auto r = server_->Query(
      "SELECT string_agg(r::text, ',' ORDER BY v) FROM generate_series(0, 9) v, "
      "LATERAL (SELECT r FROM generate_series(0, 2) r WHERE "
      "satisfies_hash_partition('t8'::regclass, 3, r, v::bigint)) x");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "2,2,0,1,0,2,0,1,0,2");
}

TEST_F(PgHashLive, Integers) {
  std::mt19937_64 rng(42);
  std::vector<int64_t> values = {0, 1, -1, 2, -2, std::numeric_limits<int64_t>::max(),
                                 std::numeric_limits<int64_t>::min(), 4294967296LL,
                                 -4294967296LL, 2147483647LL, -2147483648LL, 4294967295LL};
  for (int i = 0; i < 1500; ++i) values.push_back(static_cast<int64_t>(rng()));
  for (int i = 0; i < 500; ++i) values.push_back(static_cast<int64_t>(rng() % 2000) - 1000);
  std::vector<std::string> literals;
  std::vector<KeyValue> keys;
  for (int64_t v : values) {
    literals.push_back(v == std::numeric_limits<int64_t>::min() ? "(-9223372036854775807 - 1)"
                                                                : std::to_string(v));
    keys.push_back(KeyValue::Int(v));
  }
  for (uint64_t m : {3u, 4u, 16u, 17u}) Check("t8", "bigint", literals, keys, m);

  // int4 and int2 tables: the same hash for values in range.
  std::vector<std::string> l4, l2;
  std::vector<KeyValue> k4, k2;
  for (int i = 0; i < 1000; ++i) {
    auto v4 = static_cast<int32_t>(rng());
    auto v2 = static_cast<int16_t>(rng());
    l4.push_back(std::to_string(v4));
    k4.push_back(KeyValue::Int(v4));
    l2.push_back(std::to_string(v2));
    k2.push_back(KeyValue::Int(v2));
  }
  l4.push_back("2147483647");
  k4.push_back(KeyValue::Int(2147483647));
  l4.push_back("(-2147483647 - 1)");
  k4.push_back(KeyValue::Int(-2147483648LL));
  Check("t4", "int4", l4, k4, 7);
  Check("t2", "int2", l2, k2, 5);
}

TEST_F(PgHashLive, Text) {
  std::mt19937_64 rng(7);
  std::vector<std::string> values = {"", "a", "ab", "abc", "abcd", "hello world",
                                     "exactly12byt", "thirteen byte", "Zürich", "東京",
                                     "emoji 🎉", "acme", "globex", "'quoted'", "tab\there"};
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    size_t len = rng() % 40;
    for (size_t j = 0; j < len; ++j) {
      // printable ASCII and some UTF-8 two-byte characters
      if (rng() % 8 == 0) {
        s += "é";
      } else {
        s.push_back(static_cast<char>(' ' + rng() % 95));
      }
    }
    values.push_back(s);
  }
  std::vector<std::string> literals;
  std::vector<KeyValue> keys;
  for (const std::string& v : values) {
    literals.push_back(SqlString(v));
    keys.push_back(KeyValue::Text(v));
  }
  Check("tt", "text", literals, keys, 5);
  Check("tt", "text", literals, keys, 16);
  Check("tv", "varchar", literals, keys, 3);
}

TEST_F(PgHashLive, Uuid) {
  std::mt19937_64 rng(9);
  std::vector<std::string> literals;
  std::vector<KeyValue> keys;
  for (int i = 0; i < 1000; ++i) {
    std::string bytes(16, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    KeyValue k = KeyValue::Uuid(bytes);
    literals.push_back(SqlString(k.ToString()));
    keys.push_back(k);
  }
  auto nil = ParseKeyText("00000000-0000-0000-0000-000000000000", KeyType::kUuid);
  ASSERT_TRUE(nil.ok());
  literals.push_back("'00000000-0000-0000-0000-000000000000'");
  keys.push_back(*nil);
  Check("tu", "uuid", literals, keys, 6);
}

}  // namespace
}  // namespace shardgate::routing
