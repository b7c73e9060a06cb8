// Directory routers whose entries live in a table (`store:`): keys read from the table on the
// store's shard (simple and extended protocol), cached, dropped by NOTIFY when the table
// changes, and clear errors for a row naming an unknown shard or a store that cannot be read.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/proxy/sharded_fixture.h"
#include "tests/support/shardctl_run.h"

namespace shardgate::testing {
namespace {

// What an operator installs on the store (README "Directory routers with a table").
constexpr char kTrigger[] = R"sql(
CREATE FUNCTION shardgate_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('shardgate_directory', TG_ARGV[0] || ' ' || (to_jsonb(OLD) ->> TG_ARGV[1]));
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('shardgate_directory', TG_ARGV[0] || ' ' || (to_jsonb(NEW) ->> TG_ARGV[1]));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER shardgate_directory_changed AFTER INSERT OR UPDATE OR DELETE ON tenant_shards
  FOR EACH ROW EXECUTE FUNCTION shardgate_directory_changed('tenants', 'tenant');
)sql";

class ShardedDirectoryTest : public ShardedSuite<ShardedDirectoryTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0, 0};
    o.extra_top_yaml = "reshard: {user: postgres, password: postgres}\n";  // shardctl's login
    o.extra_database_yaml =
        "    routers:\n"
        "      tenants:\n"
        "        type: directory\n"
        "        store: {shard: s0, table: public.tenant_shards, key_column: tenant, "
        "shard_column: shard}\n"
        "        default: s2\n"
        "      missing: {type: directory, store: {shard: s1, table: no_such_table}, "
        "shards: [s0, s1]}\n"
        "    tables:\n"
        "      accounts: {key: tenant, router: tenants}\n"
        "      orphans: {key: k, router: missing}\n";
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    SetUpWithSchema(
        "CREATE TABLE accounts (tenant text, id int, v text, PRIMARY KEY (tenant, id));"
        "CREATE TABLE orphans (k text PRIMARY KEY);"
        "CREATE TABLE tenant_shards (tenant text PRIMARY KEY, shard text NOT NULL);" +
        std::string(kTrigger));
  }

  // The primary that holds row (tenant, id), -1 when none does, -2 when several do.
  int HolderOf(const std::string& tenant, int id) {
    int holder = -1;
    for (int s = 0; s < 3; ++s) {
      auto c = env().ConnectDirect({s, -1});
      EXPECT_TRUE(c.ok()) << c.status();
      if (!c.ok()) return -3;
      Outcome o = RunSql(*c, "SELECT count(*) FROM accounts WHERE tenant = '" + tenant +
                                 "' AND id = " + std::to_string(id));
      EXPECT_TRUE(o.ok) << o.Describe();
      if (o.ok && o.Scalar() == "1") holder = holder == -1 ? s : -2;
    }
    return holder;
  }

  // `sql`'s value through `conn`, read again until it is `want` or `seconds` passed.
  static std::string ReadUntil(PgConn& conn, const std::string& sql, const std::string& want,
                               int seconds) {
    std::string now;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      Outcome o = RunSql(conn, sql);
      EXPECT_TRUE(o.ok) << o.Describe();
      now = o.ok ? o.Scalar() : "";
      if (now == want || !o.ok) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return now;
  }

  void SetStore(const std::string& sql) {
    auto s0 = env().ConnectDirect({0, -1});
    ASSERT_TRUE(s0.ok()) << s0.status();
    ASSERT_OK(s0->Exec(sql));
  }
};

TEST_F(ShardedDirectoryTest, KeysGoWhereTheTableSaysAndUnlistedOnesToTheDefault) {
  SetStore(
      "INSERT INTO tenant_shards VALUES ('acme', 's1'), ('initech', 's0'), "
      "('o''brien', 's1')");
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  for (const char* t : {"acme", "initech", "o''brien", "umbrella"}) {
    Outcome o = RunSql(
        conn, absl::StrCat("INSERT INTO accounts (tenant, id, v) VALUES ('", t, "', 1, 'simple')"));
    EXPECT_TRUE(o.ok) << t << ": " << o.Describe();
  }
  // The extended protocol: the key is a Bind parameter.
  for (const char* t : {"acme", "initech", "umbrella"}) {
    Outcome o =
        RunParams(conn, "INSERT INTO accounts (tenant, id, v) VALUES ($1, 2, 'extended')", {t});
    EXPECT_TRUE(o.ok) << t << ": " << o.Describe();
  }
  EXPECT_EQ(HolderOf("acme", 1), 1);
  EXPECT_EQ(HolderOf("acme", 2), 1);
  EXPECT_EQ(HolderOf("initech", 1), 0);
  EXPECT_EQ(HolderOf("initech", 2), 0);
  EXPECT_EQ(HolderOf("o''brien", 1), 1);
  EXPECT_EQ(HolderOf("umbrella", 1), 2) << "not in the table: the default";
  EXPECT_EQ(HolderOf("umbrella", 2), 2);
  Outcome read = RunParams(conn, "SELECT v FROM accounts WHERE tenant = $1 ORDER BY id", {"acme"});
  ASSERT_TRUE(read.ok) << read.Describe();
  ASSERT_EQ(read.rows.size(), 2u);
  EXPECT_EQ(read.rows[1][0], "extended");
  // Cached: 20 more statements for acme read the table at most once more (two workers).
  const int64_t before = env().Calls({0, -1}, "%tenant_shards%");
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(RunSql(conn, "SELECT v FROM accounts WHERE tenant = 'acme' AND id = 1").ok);
  }
  ASSERT_OK_AND_ASSIGN(PgConn other, env().Connect());
  ASSERT_TRUE(RunSql(other, "SELECT v FROM accounts WHERE tenant = 'acme' AND id = 1").ok);
  EXPECT_LE(env().Calls({0, -1}, "%tenant_shards%") - before, 1);
}

TEST_F(ShardedDirectoryTest, AChangedRowReroutesTheKeyThroughNotify) {
  SetStore("INSERT INTO tenant_shards VALUES ('globex', 's1')");
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  // The tenant's rows as an operator moving it leaves them: the old copy on s1, the new on s0.
  for (int s : {1, 0}) {
    ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({s, -1}));
    ASSERT_OK(
        direct.Exec(absl::StrCat("INSERT INTO accounts VALUES ('globex', 9, 'on s", s, "')")));
  }
  const std::string read = "SELECT v FROM accounts WHERE tenant = 'globex' AND id = 9";
  Outcome before = RunSql(conn, read);
  ASSERT_TRUE(before.ok) << before.Describe();
  EXPECT_EQ(before.Scalar(), "on s1");  // read, and now cached
  SetStore("UPDATE tenant_shards SET shard = 's0' WHERE tenant = 'globex'");
  // The trigger's NOTIFY drops the cached key: the next reads go to s0 (within the listener's
  // wake-up; without the notification they would stay on s1 for as long as the key is cached).
  EXPECT_EQ(ReadUntil(conn, read, "on s0", 10), "on s0");
  // A deleted row: the key falls back to the default shard.
  SetStore("DELETE FROM tenant_shards WHERE tenant = 'globex'");
  ASSERT_OK_AND_ASSIGN(PgConn s2, env().ConnectDirect({2, -1}));
  ASSERT_OK(s2.Exec("INSERT INTO accounts VALUES ('globex', 9, 'on s2')"));
  EXPECT_EQ(ReadUntil(conn, read, "on s2", 10), "on s2");
}

TEST_F(ShardedDirectoryTest, CopyReadsTheKeysItHasNotSeen) {
  SetStore("INSERT INTO tenant_shards VALUES ('copy_a', 's0'), ('copy_b', 's1')");
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  PgResult start(PQexec(c, "COPY accounts (tenant, id, v) FROM STDIN"));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQerrorMessage(c);
  const std::string rows = "copy_a\t1\tx\ncopy_b\t1\tx\ncopy_c\t1\tx\ncopy_a\t2\tx\n";
  ASSERT_EQ(PQputCopyData(c, rows.data(), static_cast<int>(rows.size())), 1);
  ASSERT_EQ(PQputCopyEnd(c, nullptr), 1);
  PgResult done(PQgetResult(c));
  ASSERT_EQ(PQresultStatus(done.get()), PGRES_COMMAND_OK) << PQresultErrorMessage(done.get());
  EXPECT_STREQ(PQcmdTuples(done.get()), "4");
  while (PGresult* rest = PQgetResult(c)) PQclear(rest);
  EXPECT_EQ(HolderOf("copy_a", 1), 0);
  EXPECT_EQ(HolderOf("copy_a", 2), 0);
  EXPECT_EQ(HolderOf("copy_b", 1), 1);
  EXPECT_EQ(HolderOf("copy_c", 1), 2) << "not in the table: the default";
}

TEST_F(ShardedDirectoryTest, ShardctlRouteReadsTheTableToo) {
  if (access(SHARDCTL_BINARY, X_OK) != 0) GTEST_SKIP() << "no shardctl in this tree (tsan)";
  SetStore("INSERT INTO tenant_shards VALUES ('route_me', 's1')");
  const std::string ctl = "--config " + env().proxy->config_path() + " route ";
  Shell listed = Shardctl(ctl + "\"SELECT * FROM accounts WHERE tenant = 'route_me'\"");
  EXPECT_EQ(listed.code, 0) << listed.out;
  EXPECT_THAT(listed.out, ::testing::HasSubstr("shards:   s1\n")) << listed.out;
  Shell unlisted = Shardctl(ctl + "\"SELECT * FROM accounts WHERE tenant = 'nobody'\"");
  EXPECT_EQ(unlisted.code, 0) << unlisted.out;
  EXPECT_THAT(unlisted.out, ::testing::HasSubstr("shards:   s2\n")) << unlisted.out;
  Shell missing = Shardctl(ctl + "\"SELECT * FROM orphans WHERE k = 'x'\"");
  EXPECT_EQ(missing.code, 1) << missing.out;
  EXPECT_THAT(missing.out, ::testing::HasSubstr("no_such_table")) << missing.out;
}

TEST_F(ShardedDirectoryTest, BadRowsAndUnreadableStoresAreClearErrors) {
  SetStore("INSERT INTO tenant_shards VALUES ('lost', 's9')");
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  Outcome bad = RunSql(conn, "SELECT * FROM accounts WHERE tenant = 'lost'");
  EXPECT_EQ(bad.sqlstate, "22023") << bad.Describe();
  EXPECT_THAT(bad.message, ::testing::HasSubstr("maps key lost to unknown shard 's9'"));
  Outcome missing = RunParams(conn, "SELECT * FROM orphans WHERE k = $1", {"x"});
  EXPECT_EQ(missing.sqlstate, "42P01") << missing.Describe();
  EXPECT_THAT(missing.message,
              ::testing::HasSubstr("directory router missing: cannot read key x from "
                                   "no_such_table on s1"));
  // The session goes on.
  Outcome ok = RunSql(conn, "SELECT count(*) FROM accounts WHERE tenant = 'nobody'");
  EXPECT_TRUE(ok.ok) << ok.Describe();
}

// Last (gtest runs in file order): it freezes s0, the store, for a moment.
TEST_F(ShardedDirectoryTest, AHungStoreFailsNewKeysInTimeWhileCachedOnesKeepRouting) {
  SetStore("INSERT INTO tenant_shards VALUES ('warm', 's1')");
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const std::string warm = "SELECT count(*) FROM accounts WHERE tenant = 'warm'";
  ASSERT_TRUE(RunSql(conn, warm).ok);  // read from the store, cached
  // The store's NOTIFY for that INSERT may still be on its way, and evicts the key when it
  // comes (seen once in a fresh-clone run: the cached read then went to the frozen store):
  // read it again once the notice has long arrived.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(RunSql(conn, warm).ok);
  ASSERT_OK(env().Server({0, -1}).Freeze());
  const auto t0 = std::chrono::steady_clock::now();
  Outcome cached = RunSql(conn, warm);
  Outcome fresh = RunSql(conn, "SELECT count(*) FROM accounts WHERE tenant = 'cold'");
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_OK(env().Server({0, -1}).Thaw());
  EXPECT_TRUE(cached.ok) << cached.Describe();
  EXPECT_FALSE(fresh.ok);
  EXPECT_THAT(fresh.sqlstate, ::testing::AnyOf("57014", "08001", "08006", "53300"))
      << fresh.Describe();
  EXPECT_THAT(fresh.message, ::testing::HasSubstr("cannot read key cold from")) << fresh.Describe();
  EXPECT_LT(waited, std::chrono::seconds(20)) << "bounded by health_check_timeout / connect";
  // The store back: the key is read (not listed: the default shard).
  Outcome later;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    later = RunSql(conn, "SELECT count(*) FROM accounts WHERE tenant = 'cold'");
    if (!later.ok) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (!later.ok && std::chrono::steady_clock::now() < deadline);
  EXPECT_TRUE(later.ok) << later.Describe();
}

// A statement waiting for a lookup must route by its own literals, although the worker's
// analysis cache served other statements meanwhile: one worker, so that both clients share it;
// the store's server frozen, so that the lookup waits while the other client's INSERT (the
// same shape, another tenant, already cached) goes through.
TEST_F(ShardedDirectoryTest, AStatementWaitingForALookupKeepsItsOwnKey) {
  SetStore("INSERT INTO tenant_shards VALUES ('lookup_a', 's1'), ('cached_b', 's2')");
  const int port = FreePort();
  const std::string yaml =
      absl::StrReplaceAll(env().Yaml(port), {{"workers: 2\n", "workers: 1\n"}});
  ASSERT_NE(yaml.find("workers: 1\n"), std::string::npos) << yaml;
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml, port));
  // The listener forgets every cached key when it starts listening: 'cached_b' is read after.
  const auto listening = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (proxy->Log().find("directory listener on s0 (app) listening") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), listening) << proxy->Log();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_OK_AND_ASSIGN(PgConn a, PgConn::Connect(proxy->ConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn b, PgConn::Connect(proxy->ConnString()));
  const std::string insert_b = "INSERT INTO accounts (tenant, id, v) VALUES ('cached_b', 7, 'b')";
  ASSERT_TRUE(RunSql(b, insert_b).ok);  // 'cached_b' read from the store now
  ASSERT_OK(env().Server({0, -1}).Freeze());
  ASSERT_EQ(PQsendQuery(a.get(),
                        "INSERT INTO accounts (tenant, id, v) VALUES ('lookup_a', 7, 'a')"),
            1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a waits for the store
  Outcome second_b = RunSql(b, "INSERT INTO accounts (tenant, id, v) VALUES ('cached_b', 8, 'b')");
  ASSERT_OK(env().Server({0, -1}).Thaw());
  EXPECT_TRUE(second_b.ok) << second_b.Describe();
  for (PgResult r(PQgetResult(a.get())); r != nullptr; r.reset(PQgetResult(a.get()))) {
    EXPECT_OK(ResultStatus(r.get(), a.get()));
  }
  EXPECT_EQ(HolderOf("lookup_a", 7), 1) << "routed by the other client's key";
  EXPECT_EQ(HolderOf("cached_b", 8), 2);
}

}  // namespace
}  // namespace shardgate::testing
