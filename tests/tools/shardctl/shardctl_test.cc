// shardctl as users run it: exit codes, the route report (text and JSON) and FILE:LINE:COLUMN
// errors from `check`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

using ::testing::HasSubstr;

const char kGood[] = R"(listen: {host: 127.0.0.1, port: 6432}
users:
  - {name: app, password: secret}
databases:
  app:
    shards:
      - {name: s0, primary: {host: 127.0.0.1, port: 5432}}
      - {name: s1, primary: {host: 127.0.0.1, port: 5433}}
      - {name: s2, primary: {host: 127.0.0.1, port: 5434}}
    routers:
      by_range: {type: range, ranges: [{to: 100, shard: s0}, {to: 200, shard: s1}, {shard: s2}]}
    tables:
      events: {key: id, router: by_range}
      countries: {reference: true}
)";

const char kBadRouter[] = R"(listen: {host: 127.0.0.1, port: 6432}
users:
  - {name: app, password: secret}
databases:
  app:
    shards:
      - {name: s0, primary: {host: 127.0.0.1, port: 5432}}
      - {name: s1, primary: {host: 127.0.0.1, port: 5433}}
    routers:
      r: {type: range, ranges: [{to: 100, shard: s0}, {from: 50, shard: s7}]}
    tables:
      events: {key: id, router: r}
)";

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr together
};

class ShardctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shardctl_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::remove((dir_ + "/good.yaml").c_str());
    std::remove((dir_ + "/bad.yaml").c_str());
    rmdir(dir_.c_str());
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // Runs shardctl with `args` (already shell-quoted).
  Result Run(const std::string& args) {
    Result r;
    std::string cmd = std::string(SHARDCTL_PATH) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  std::string dir_;
};

TEST_F(ShardctlTest, RoutePrintsShardsAndWhy) {
  std::string cfg = Write("good.yaml", kGood);
  Result r = Run("--config " + cfg + " route 'SELECT * FROM events WHERE id = 150'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("shards:   s1\n"));
  EXPECT_THAT(r.out, HasSubstr("events.id = 150 -> s1"));
  EXPECT_THAT(r.out, HasSubstr("role:     replica"));

  r = Run("--config " + cfg + " route 'SELECT * FROM events'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("shards:   s0, s1, s2\n"));
  EXPECT_THAT(r.out, HasSubstr("no key condition on events"));
}

TEST_F(ShardctlTest, RouteWithParamsAndJson) {
  std::string cfg = Write("good.yaml", kGood);
  Result r = Run("--config " + cfg +
                 " --json route 'UPDATE events SET x = 1 WHERE id = $1' --param 500");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"shards\": [\"s2\"]"));
  EXPECT_THAT(r.out, HasSubstr("\"role\": \"primary\""));
  EXPECT_THAT(r.out, HasSubstr("\"write\": true"));
}

TEST_F(ShardctlTest, RouteRefusalIsExitOneWithSqlState) {
  std::string cfg = Write("good.yaml", kGood);
  Result r = Run("--config " + cfg + " route 'SELECT DISTINCT ON (a) a FROM events'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("ERROR 0A000"));
  EXPECT_THAT(r.out, HasSubstr("HINT:"));
  r = Run("--config " + cfg + " --json route 'SELEC 1'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("\"sqlstate\": \"42601\""));
}

TEST_F(ShardctlTest, CheckAcceptsAGoodConfig) {
  std::string cfg = Write("good.yaml", kGood);
  Result r = Run("--config " + cfg + " check");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("OK (1 databases, 1 routers, 2 tables)"));
}

TEST_F(ShardctlTest, CheckReportsRouterErrorsWithPositions) {
  std::string cfg = Write("bad.yaml", kBadRouter);
  Result r = Run("--config " + cfg + " check");
  EXPECT_EQ(r.code, 1);
  // Line 10 is the router; column 73 is the unknown shard of its second range.
  EXPECT_THAT(r.out, HasSubstr(cfg + ":10:73: router 'r' range 2: unknown shard 's7'"));
  r = Run("--config " + dir_ + "/missing.yaml check");
  EXPECT_EQ(r.code, 1);
}

// The reshard steps that need no server: what plan refuses, and steps without a reshard.
TEST_F(ShardctlTest, ReshardPlanRefusesMapsItCannotMoveTo) {
  std::string cfg = Write("good.yaml", kGood);
  Result r = Run("--config " + cfg + " reshard plan --to " + cfg);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("Nothing moves"));

  std::string rekeyed = kGood;
  rekeyed.replace(rekeyed.find("events: {key: id"), 16, "events: {key: ts");
  r = Run("--config " + cfg + " reshard plan --to " + Write("rekeyed.yaml", rekeyed));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("changes its kind or shard key"));

  std::string dropped = kGood;
  dropped.erase(dropped.find("      countries: {reference: true}\n"));
  r = Run("--config " + cfg + " reshard plan --to " + Write("dropped.yaml", dropped));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("table 'countries' is missing from the new map"));

  std::string moved = kGood;
  moved.replace(moved.find("port: 5432"), 10, "port: 6543");
  r = Run("--config " + cfg + " --json reshard plan --to " + Write("moved.yaml", moved));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"sqlstate\": \"22023\""));
  EXPECT_THAT(r.out, HasSubstr("has another primary"));

  r = Run("--config " + cfg + " reshard plan --to " + dir_ + "/missing.yaml");
  EXPECT_NE(r.code, 0) << r.out;
}

TEST_F(ShardctlTest, ReshardStepsNeedAStartedReshard) {
  std::string cfg = Write("good.yaml", kGood);
  for (const char* step : {"status", "verify", "cutover", "cleanup", "abort"}) {
    Result r = Run("--config " + cfg + " reshard " + step);
    EXPECT_EQ(r.code, 1) << step << ": " << r.out;
    EXPECT_THAT(r.out, HasSubstr("no reshard in progress")) << step;
  }
}

TEST_F(ShardctlTest, HotkeyMoveRefusesBeforeTouchingAnything) {
  std::string cfg = Write("good.yaml", kGood);
  const std::string out = dir_ + "/good.yaml.hotkey.yaml";
  Result r = Run("--config " + cfg + " hotkey move --table countries --key 1 --to s2");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ERROR 42P01: table countries is not a sharded table"));
  r = Run("--config " + cfg + " --json hotkey move --table events --key 150 --to s9");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("{\"error\": {\"sqlstate\": \"42704\""));
  // Key 150 is on s1 already: nothing to write, nothing to move.
  r = Run("--config " + cfg + " hotkey move --table events --key 150 --to s1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("already routes to s1: nothing to move"));
  r = Run("--config " + cfg + " hotkey move --table events --key 150");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--to is required"));
  r = Run("--config " + cfg + " hotkey move --table events --key 150 --to s2 --out " + cfg);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--out must not be the running config"));
  EXPECT_NE(access(out.c_str(), F_OK), 0) << "no map written";
}

}  // namespace
