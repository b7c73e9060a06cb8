// Robustness: random statements (valid ones built from a grammar, and mutated/garbled ones)
// never crash the normalizer, the analyzer, the cache or the planner; errors are statuses.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "routing/analysis_cache.h"
#include "routing/analyzer.h"
#include "routing/hints.h"
#include "routing/planner.h"
#include "tests/routing/test_util.h"

namespace shardgate::routing {
namespace {

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  std::string Statement() {
    switch (Pick(8)) {
      case 0: return "INSERT INTO " + Table() + " (id, x) VALUES " + Rows();
      case 1: return "UPDATE " + Table() + " SET x = " + Value() + " WHERE " + Condition(3);
      case 2: return "DELETE FROM " + Table() + " WHERE " + Condition(3);
      case 3: return "WITH c AS (" + Select(2) + ") SELECT * FROM c";
      default: return Select(3);
    }
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % n); }
  std::string Table() {
    static const char* kTables[] = {"users", "orders", "events", "countries", "pg_class",
                                    "public.users", "nowhere"};
    return kTables[Pick(7)];
  }
  std::string Column() {
    static const char* kCols[] = {"id", "user_id", "x", "t.id", "u.id", "name"};
    return kCols[Pick(6)];
  }
  std::string Value() {
    switch (Pick(9)) {
      case 0: return std::to_string(static_cast<int64_t>(rng_()));
      case 1: return "'" + std::to_string(Pick(1000)) + "'";
      case 2: return "$" + std::to_string(1 + Pick(3));
      case 3: return "NULL";
      case 4: return "-" + std::to_string(Pick(100));
      case 5: return "'{1,2,3}'";
      case 6: return "lower('x')";
      case 7: return std::to_string(Pick(100)) + ".5";
      default: return std::to_string(Pick(500));
    }
  }
  std::string Condition(int depth) {
    if (depth <= 0) return Column() + " = " + Value();
    switch (Pick(9)) {
      case 0: return Condition(depth - 1) + " AND " + Condition(depth - 1);
      case 1: return "(" + Condition(depth - 1) + " OR " + Condition(depth - 1) + ")";
      case 2: return "NOT " + Condition(depth - 1);
      case 3: return Column() + " IN (" + Value() + ", " + Value() + ")";
      case 4: return Column() + " = ANY(" + Value() + ")";
      case 5: return "EXISTS (" + Select(depth - 1) + ")";
      case 6: return Column() + " IN (" + Select(depth - 1) + ")";
      case 7: return Column() + " = " + Column();
      default: return Column() + " = " + Value();
    }
  }
  std::string Select(int depth) {
    std::string s = "SELECT ";
    static const char* kTargets[] = {"*", "count(*)", "id, sum(x)", "DISTINCT id",
                                     "id, row_number() OVER ()", "nextval('s')", "1"};
    s += kTargets[Pick(7)];
    s += " FROM " + Table() + " t";
    if (Pick(2)) s += " JOIN " + Table() + " u ON u.id = t.id";
    s += " WHERE " + Condition(depth);
    if (Pick(3) == 0) s += " GROUP BY 1";
    if (Pick(3) == 0) s += " ORDER BY " + std::to_string(1 + Pick(2)) + " DESC";
    if (Pick(3) == 0) s += " LIMIT " + Value();
    if (Pick(5) == 0) s += " FOR UPDATE";
    if (depth > 0 && Pick(5) == 0) s += " UNION ALL " + Select(depth - 1);
    return s;
  }
  std::string Rows() {
    std::string s;
    int n = 1 + Pick(4);
    for (int i = 0; i < n; ++i) s += (i ? ", (" : "(") + Value() + ", " + Value() + ")";
    return s;
  }

  std::mt19937_64 rng_;
};

// Garbles a statement: deletes, duplicates or replaces bytes (including quotes, $ and NUL-free
// control characters), or truncates it.
std::string Mutate(std::string s, std::mt19937_64& rng) {
  static const char kChars[] = "'\"$;()-*/\\ \n\t{}[],.:=<>|eE0123456789xX";
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    size_t pos = rng() % s.size();
    switch (rng() % 4) {
      case 0: s.erase(pos, 1 + rng() % 3); break;
      case 1: s.insert(pos, 1, kChars[rng() % (sizeof(kChars) - 1)]); break;
      case 2: s[pos] = kChars[rng() % (sizeof(kChars) - 1)]; break;
      default: s.resize(pos); break;
    }
  }
  return s;
}

TEST(AnalyzerRandom, NeverCrashes) {
  auto l = testing::LoadMap(testing::ThreeShards(
      "    routers:\n"
      "      r: {type: hash_ring, vnodes: 8}\n"
      "      m: {type: range, ranges: [{to: 100, shard: s0}, {shard: s1}]}\n"
      "    tables:\n"
      "      users: {key: id, router: r}\n"
      "      orders: {key: user_id, router: r}\n"
      "      events: {key: id, router: m}\n"
      "      countries: {reference: true}\n"));
  ASSERT_TRUE(l.ok()) << l.status();
  Planner planner(l->map);
  AnalysisCache cache(64);
  Generator gen(12345);
  std::mt19937_64 rng(99);
  std::vector<std::optional<std::string_view>> values = {std::string_view("7"),
                                                         std::string_view("{1,2}"), std::nullopt};
  int analysed = 0, planned = 0;
  for (int i = 0; i < 3000; ++i) {  // bounded
    std::string sql = gen.Statement();
    if (i % 2 == 1) sql = Mutate(sql, rng);
    auto hints = ParseCommentHints(sql);
    auto direct = Analyze(sql);
    auto a = cache.Analyze(sql);
    // The cache and a direct parse agree on whether the statement is valid SQL.
    EXPECT_EQ(direct.ok(), a.ok()) << sql;
    if (!a.ok()) continue;
    ++analysed;
    PlanInput in;
    in.literals = a->literals;
    in.params.values = values;
    auto p = planner.Plan(*a->analysis, in);
    if (p.ok()) {
      ++planned;
      EXPECT_FALSE(p->shards.empty()) << sql;
      for (int s : p->shards) EXPECT_TRUE(s >= 0 && s < 3) << sql;
    }
  }
  // The generator must exercise the planner, not only the error paths.
  EXPECT_GT(analysed, 1000);
  EXPECT_GT(planned, 500);
}

TEST(AnalyzerRandom, RandomBytes) {
  std::mt19937_64 rng(7);
  AnalysisCache cache(16);
  for (int i = 0; i < 3000; ++i) {  // bounded
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(1 + rng() % 255);  // no NUL: never on the wire
    (void)ParseCommentHints(s);
    (void)ParseSessionHint(s);
    (void)cache.Analyze(s);
  }
  SUCCEED();
}

}  // namespace
}  // namespace shardgate::routing
