// rate_limit on a sharded database (statements routed by RouteFrame, not forwarded as-is):
// 53400 beyond the burst in the simple and extended protocol, single-shard and cross-shard,
// and the connection goes on. The non-sharded cases are in rate_limits_test.cc.
#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

class ShardedRateLimitTest : public ShardedSuite<ShardedRateLimitTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0};
    o.extra_database_yaml =
        "    routers:\n"
        "      by_id: {type: modulo, hash: postgres, shards: [s0, s1]}\n"
        "    tables:\n"
        "      rl_items: {key: id, router: by_id}\n"
        "    rate_limit: {queries_per_second: 1, burst: 4}\n";
    return o;
  }
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

TEST_F(ShardedRateLimitTest, RefusesBeyondTheBurstOnEveryPath) {
  ASSERT_OK(env().ExecOnPrimaries(
      "drop table if exists rl_items; create table rl_items (id bigint primary key, v int)"));
  ASSERT_OK_AND_ASSIGN(PgConn c, env().Connect());
  // One token per second after the first four; every statement kind below refused alike.
  const std::vector<std::function<absl::Status(int)>> kinds = {
      [&](int i) {
        return c.Exec(absl::StrCat("insert into rl_items (id, v) values (", i, ", 1)"));
      },
      [&](int i) {
        return c.ScalarParams("select v from rl_items where id = $1", {std::to_string(i)}).status();
      },
      [&](int) { return c.Exec("select count(*) from rl_items"); },  // both shards
      [&](int) {
        return c.ScalarParams("select count(*) from rl_items where v = $1", {"1"}).status();
      },
  };
  int ok = 0, refused = 0;
  const auto start = Clock::now();
  for (int i = 0; i < 24; ++i) {
    absl::Status st = kinds[i % kinds.size()](i);
    if (st.ok()) {
      ++ok;
      continue;
    }
    ++refused;
    EXPECT_EQ(SqlState(st), "53400") << i << ": " << st;
    EXPECT_THAT(std::string(st.message()),
                HasSubstr("rate limit exceeded for database \"app\": 1 queries/s (burst 4)"));
  }
  const double elapsed = Seconds(start);
  EXPECT_GE(ok, 4);
  EXPECT_LE(ok, 4 + elapsed + 1);
  if (elapsed < 10) EXPECT_GE(refused, 8);
  // The connection is fine: a token comes back within a second, in both protocols.
  EXPECT_TRUE(WaitFor([&] { return c.Exec("select count(*) from rl_items").ok(); },
                      std::chrono::seconds(10)));
  std::string v;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = c.ScalarParams("select count(*) from rl_items where id = $1", {"0"});
        if (r.ok()) v = *r;
        return r.ok();
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(v, "1");  // the first insert took a token of the burst
  // In a transaction on a shard: waits for its token (max_wait 1s) instead of failing it.
  EXPECT_TRUE(WaitFor([&] { return c.Exec("begin").ok(); }, std::chrono::seconds(10)));
  EXPECT_OK(c.Exec("insert into rl_items (id, v) values (1000, 2)"));
  EXPECT_OK(c.Exec("select v from rl_items where id = 1000"));
  EXPECT_OK(c.Exec("commit"));
}

}  // namespace
}  // namespace shardgate::testing
