// Issue 10, the query cache: a cacheable read is answered from the cache after its first run
// (pg_stat_statements on the servers counts what reached them), a write through shardgate is
// never followed by a stale read (also under concurrent readers and writers), the extended
// protocol is served from it too, and nothing is cached inside a transaction, for an error, for
// a table without `cache:` (unless a hint asks) or past the TTL.
// Cluster: two shards, s0 with a replica (fills must read the primary).
#include "tests/proxy/http_get.h"
#include "tests/proxy/sharded_fixture.h"
#include "tests/support/bytes.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

class QueryCacheTest : public ShardedSuite<QueryCacheTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {1, 0};
    o.extra_database_yaml =
        "    query_cache: {memory: 4194304}\n"
        "    routers:\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1]}\n"
        "    tables:\n"
        "      accounts: {key: id, router: r_mod, cache: 30s}\n"
        "      plain: {key: id, router: r_mod}\n";
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    SetUpWithSchema(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);"
        "CREATE TABLE plain (id bigint PRIMARY KEY, v text)");
  }

  // A key of s0 (the shard with a replica) not used by another test.
  static int64_t FreshKey() {
    static int next = 0;
    return env().KeysOn("accounts", 0, 200)[next++];
  }
  // How often statements matching the ILIKE pattern reached s0's primary / its replica / any.
  static int64_t PrimaryCalls(const std::string& pattern) { return env().Calls({0, -1}, pattern); }
  static int64_t ReplicaCalls(const std::string& pattern) { return env().Calls({0, 0}, pattern); }
  static int64_t Calls(const std::string& pattern) {
    return PrimaryCalls(pattern) + ReplicaCalls(pattern);
  }
  // pg_stat_statements counts by the statement's shape, not its text (a column alias does not
  // count): each test reads with its own number of extra `id` columns, its pattern finds them.
  static std::string Cols(int shape) {
    std::string s;
    for (int i = 0; i < shape; ++i) s += ", id";
    return s;
  }
  static std::string Pattern(const std::string& first, int shape, const std::string& table) {
    return absl::StrCat("%SELECT ", first, Cols(shape), " FROM ", table, " %");
  }
  static std::string CacheColumn(const std::string& column) {
    auto admin = env().ConnectAdmin();
    if (!admin.ok()) return "";
    auto rows = admin->Rows("SHOW CACHE");
    if (!rows.ok() || rows->empty()) return "";
    const std::vector<std::string> names = {"database", "entries", "bytes",  "max_bytes",
                                            "hits",     "misses",  "stores", "invalidated",
                                            "evicted",  "raced"};
    const size_t i = std::find(names.begin(), names.end(), column) - names.begin();
    return i < rows->front().size() ? rows->front()[i] : "";
  }
};

TEST_F(QueryCacheTest, ARepeatedReadIsAnsweredFromTheCache) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const int64_t k = FreshKey();
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 100)")));
  const std::string read =
      absl::StrCat("SELECT balance" + Cols(2) + " FROM accounts WHERE id = ", k);
  const int64_t hits_before = std::stoll(CacheColumn("hits"));
  for (int i = 0; i < 5; ++i) {
    Outcome o = RunSql(conn, read);
    ASSERT_TRUE(o.ok) << o.Describe();
    EXPECT_EQ(o.Scalar(), "100");
  }
  EXPECT_EQ(PrimaryCalls(Pattern("balance", 2, "accounts")), 1)
      << "only the first read reached a server";
  EXPECT_EQ(ReplicaCalls(Pattern("balance", 2, "accounts")), 0) << "a fill reads the primary";
  EXPECT_GE(std::stoll(CacheColumn("hits")) - hits_before, 4);

  // Another connection of the same user shares the entry; another key is another entry.
  ASSERT_OK_AND_ASSIGN(PgConn other, env().Connect());
  EXPECT_EQ(RunSql(other, read).Scalar(), "100");
  EXPECT_EQ(PrimaryCalls(Pattern("balance", 2, "accounts")), 1);
  EXPECT_TRUE(RunSql(other, absl::StrCat("SELECT balance" + Cols(2) + " FROM accounts WHERE id = ",
                                         FreshKey()))
                  .ok);
  EXPECT_EQ(PrimaryCalls(Pattern("balance", 2, "accounts")), 2);
}

TEST_F(QueryCacheTest, NoStaleReadAfterAWriteThroughTheProxy) {
  ASSERT_OK_AND_ASSIGN(PgConn reader, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn writer, env().Connect());
  const int64_t k = FreshKey();
  const std::string read = absl::StrCat("SELECT balance FROM accounts WHERE id = ", k);
  auto balance = [&] {
    Outcome o = RunSql(reader, read);
    EXPECT_TRUE(o.ok) << o.Describe();
    return o.rows.empty() ? std::string("(none)") : o.Scalar();
  };

  // An empty answer is cached too; the INSERT of that key invalidates it.
  EXPECT_EQ(balance(), "(none)");
  EXPECT_EQ(balance(), "(none)");
  ASSERT_OK(writer.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 1)")));
  EXPECT_EQ(balance(), "1");
  EXPECT_EQ(balance(), "1");

  // A keyed UPDATE, in the simple and the extended protocol.
  ASSERT_OK(writer.Exec(absl::StrCat("UPDATE accounts SET balance = 2 WHERE id = ", k)));
  EXPECT_EQ(balance(), "2");
  Outcome o =
      RunParams(writer, "UPDATE accounts SET balance = $2 WHERE id = $1", {absl::StrCat(k), "3"});
  ASSERT_TRUE(o.ok) << o.Describe();
  EXPECT_EQ(balance(), "3");

  // A write without the key (on every shard) invalidates every entry of the table.
  ASSERT_OK(writer.Exec("UPDATE accounts SET balance = balance + 10 WHERE balance >= 0"));
  EXPECT_EQ(balance(), "13");

  // In a transaction: the read before COMMIT sees the committed value; the one after, the new.
  ASSERT_OK(writer.Exec("BEGIN"));
  ASSERT_OK(writer.Exec(absl::StrCat("UPDATE accounts SET balance = 20 WHERE id = ", k)));
  EXPECT_EQ(balance(), "13");
  EXPECT_EQ(balance(), "13");
  ASSERT_OK(writer.Exec("COMMIT"));
  EXPECT_EQ(balance(), "20");

  // A rolled-back write leaves the value; DELETE removes it.
  ASSERT_OK(writer.Exec("BEGIN"));
  ASSERT_OK(writer.Exec(absl::StrCat("UPDATE accounts SET balance = 99 WHERE id = ", k)));
  ASSERT_OK(writer.Exec("ROLLBACK"));
  EXPECT_EQ(balance(), "20");
  ASSERT_OK(writer.Exec(absl::StrCat("DELETE FROM accounts WHERE id = ", k)));
  EXPECT_EQ(balance(), "(none)");
  EXPECT_GE(std::stoll(CacheColumn("invalidated")), 4);
}

// The race the cache must not lose: readers fill and hit the entry of one key while a writer
// increments it. Each value a writer was told is committed must be seen (or a later one) by
// every read that starts afterwards, and no reader may see the value go back.
TEST_F(QueryCacheTest, ConcurrentReadersNeverSeeAnAcknowledgedWriteUndone) {
  const int64_t k = FreshKey();
  ASSERT_OK_AND_ASSIGN(PgConn writer, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn checker, env().Connect());
  ASSERT_OK(writer.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 0)")));
  const std::string read = absl::StrCat("SELECT balance FROM accounts WHERE id = ", k);
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, went_back{0}, failed{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      auto conn = env().Connect();
      if (!conn.ok()) {
        ++failed;
        return;
      }
      int64_t last = -1;
      for (int i = 0; i < 20000 && !stop.load(); ++i) {
        Outcome o = RunSql(*conn, read);
        if (!o.ok || o.rows.empty()) {
          ++failed;
          continue;
        }
        const int64_t v = std::stoll(o.Scalar());
        if (v < last) ++went_back;
        last = std::max(last, v);
        ++reads;
      }
    });
  }
  int stale = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int writes = 0;
  for (; writes < 150 && std::chrono::steady_clock::now() < deadline; ++writes) {
    Outcome w = RunSql(writer, absl::StrCat("UPDATE accounts SET balance = balance + 1 WHERE id "
                                            "= ",
                                            k, " RETURNING balance"));
    ASSERT_TRUE(w.ok) << w.Describe();
    const int64_t written = std::stoll(w.Scalar());
    Outcome c = RunSql(checker, read);
    ASSERT_TRUE(c.ok) << c.Describe();
    if (std::stoll(c.Scalar()) < written) ++stale;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(stale, 0) << "reads after an acknowledged write returned an older value";
  EXPECT_EQ(went_back, 0) << "a reader saw the balance go back";
  EXPECT_EQ(failed, 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(RunSql(checker, read).Scalar(), absl::StrCat(writes));
}

TEST_F(QueryCacheTest, TheExtendedProtocolIsServedFromTheCacheToo) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const int64_t k = FreshKey();
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 7)")));
  const std::string sql = "SELECT balance" + Cols(3) + " FROM accounts WHERE id = $1";
  for (int i = 0; i < 4; ++i) {
    Outcome o = RunParams(conn, sql, {absl::StrCat(k)});
    ASSERT_TRUE(o.ok) << o.Describe();
    ASSERT_EQ(o.rows.size(), 1u);
    EXPECT_EQ(o.rows[0][0], "7");
    EXPECT_EQ(o.rows[0][1], absl::StrCat(k));
  }
  EXPECT_EQ(PrimaryCalls(Pattern("balance", 3, "accounts")), 1);

  // Binary parameter: another key of the cache (the Bind differs), the same answer.
  Outcome b = RunBinaryInt8(conn, sql, k);
  ASSERT_TRUE(b.ok) << b.Describe();
  EXPECT_EQ(b.Scalar(), "7");
  EXPECT_EQ(RunBinaryInt8(conn, sql, k).Scalar(), "7");
  EXPECT_EQ(PrimaryCalls(Pattern("balance", 3, "accounts")), 2);

  // A named prepared statement; a write invalidates its entry.
  PgResult prepared(PQprepare(conn.get(), "ext_read", sql.c_str(), 1, nullptr));
  ASSERT_OK(ResultStatus(prepared.get(), conn.get()));
  const std::string key = absl::StrCat(k);
  const char* values[1] = {key.c_str()};
  auto run_prepared = [&] {
    return OutcomeOf(conn.get(),
                     PQexecPrepared(conn.get(), "ext_read", 1, values, nullptr, nullptr, 0));
  };
  EXPECT_EQ(run_prepared().Scalar(), "7");
  EXPECT_EQ(run_prepared().Scalar(), "7");
  ASSERT_OK(conn.Exec(absl::StrCat("UPDATE accounts SET balance = 8 WHERE id = ", k)));
  EXPECT_EQ(run_prepared().Scalar(), "8");
  EXPECT_EQ(RunParams(conn, sql, {absl::StrCat(k)}).Scalar(), "8");

  // A pipeline of cached and uncached requests keeps its order.
  ASSERT_EQ(PQenterPipelineMode(conn.get()), 1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(PQsendQueryPrepared(conn.get(), "ext_read", 1, values, nullptr, nullptr, 0), 1);
    const std::string other = absl::StrCat("SELECT ", i, " AS pipe_other");
    ASSERT_EQ(
        PQsendQueryParams(conn.get(), other.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  }
  ASSERT_EQ(PQpipelineSync(conn.get()), 1);
  for (int i = 0; i < 3; ++i) {
    PgResult first(PQgetResult(conn.get()));
    ASSERT_EQ(PQresultStatus(first.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
    EXPECT_STREQ(PQgetvalue(first.get(), 0, 0), "8");
    PgResult end1(PQgetResult(conn.get()));
    EXPECT_EQ(end1.get(), nullptr);
    PgResult second(PQgetResult(conn.get()));
    ASSERT_EQ(PQresultStatus(second.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
    EXPECT_EQ(std::string(PQgetvalue(second.get(), 0, 0)), absl::StrCat(i));
    PgResult end2(PQgetResult(conn.get()));
    EXPECT_EQ(end2.get(), nullptr);
  }
  PgResult sync(PQgetResult(conn.get()));
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(conn.get()), 1);
  EXPECT_EQ(RunSql(conn, "SELECT 1").Scalar(), "1");
}

// A read across shards (simple protocol) caches its merged answer; a write of any key of the
// table invalidates it.
TEST_F(QueryCacheTest, AFanOutReadIsCachedAsOneAnswer) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const std::string count = "SELECT count(*), count(*), count(*) FROM accounts";
  auto calls = [&](int shard) {
    return env().Calls({shard, -1}, "%count(*), count(*), count(*)%");
  };
  Outcome first = RunSql(conn, count);
  ASSERT_TRUE(first.ok) << first.Describe();
  for (int i = 0; i < 3; ++i) {
    Outcome again = RunSql(conn, count);
    ASSERT_TRUE(again.ok) << again.Describe();
    EXPECT_EQ(again.rows, first.rows);
  }
  EXPECT_EQ(calls(0), 1) << "a fill reads every shard's primary once";
  EXPECT_EQ(calls(1), 1);
  const int64_t on_s1 = env().KeysOn("accounts", 1, 30).back();
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", on_s1, ", 0)")));
  Outcome after = RunSql(conn, count);
  ASSERT_TRUE(after.ok) << after.Describe();
  EXPECT_EQ(std::stoll(after.Scalar()), std::stoll(first.Scalar()) + 1);
  EXPECT_EQ(calls(1), 2);
  // An error from the shards is not stored (pg_stat_statements does not count failed
  // statements, so the cache's own count tells).
  const std::string stores = CacheColumn("stores");
  for (int i = 0; i < 2; ++i) {
    Outcome o = RunSql(conn, "/* shardgate: cache=30s */ SELECT balance / 0 FROM accounts");
    EXPECT_EQ(o.sqlstate, "22012") << o.Describe();
  }
  EXPECT_EQ(CacheColumn("stores"), stores);
}

// Drivers such as JDBC and pgx skip Describe for statements they know, and may fetch a portal
// in parts: the cache answers each as a server would (raw protocol on a libpq-authenticated
// socket).
TEST_F(QueryCacheTest, RawExtendedRequestsWithAndWithoutDescribe) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect("sslmode=disable gssencmode=disable"));
  const int64_t k = FreshKey();
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 42)")));
  auto sock = RawSocket::Borrow(PQsocket(conn.get()));
  // Replies up to ReadyForQuery as "type:payload-summary" (DataRow: its first value).
  auto exchange = [&](const std::string& request) {
    std::string out;
    if (!sock->Send(request)) return std::string("(send failed)");
    for (int i = 0; i < 50; ++i) {
      auto m = sock->ReadMessage();
      if (!m) return out + "(timeout)";
      out += m->first;
      if (m->first == 'D' && m->second.size() >= 6) {
        const uint32_t len = GetInt32(m->second, 2);
        out += "(" + m->second.substr(6, len) + ")";
      }
      if (m->first == 'C') out += "(" + m->second.substr(0, m->second.find('\0')) + ")";
      if (m->first == 'Z') return out;
    }
    return out + "(too many)";
  };
  const std::string sql = "SELECT balance" + Cols(9) + " FROM accounts WHERE id = $1";
  ASSERT_EQ(exchange(Msg('P', Body().CStr("raw_s").CStr(sql).Int16(0)) + Msg('S', Body())), "1Z");
  const std::string key = absl::StrCat(k);
  const std::string bind =
      Msg('B', Body().CStr("").CStr("raw_s").Int16(0).Int16(1).Value(key).Int16(0));
  const std::string execute = Msg('E', Body().CStr("").Int32(0)) + Msg('S', Body());
  const std::string describe = Msg('D', Body().Char('P').CStr(""));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(exchange(bind + execute), "2D(42)C(SELECT 1)Z") << "without Describe, round " << i;
  }
  EXPECT_EQ(Calls(Pattern("balance", 9, "accounts")), 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(exchange(bind + describe + execute), "2TD(42)C(SELECT 1)Z")
        << "with Describe, round " << i;
  }
  EXPECT_EQ(Calls(Pattern("balance", 9, "accounts")), 2) << "one entry per shape of request";

  // Several rows fetched one at a time from a cached portal: PortalSuspended in between.
  const std::string many = "SELECT g" + Cols(0) +
                           " FROM accounts, generate_series(1, 3) g "
                           "WHERE id = $1 ORDER BY g";
  ASSERT_EQ(exchange(Msg('P', Body().CStr("raw_m").CStr(many).Int16(0)) + Msg('S', Body())), "1Z");
  const std::string bind_many =
      Msg('B', Body().CStr("").CStr("raw_m").Int16(0).Int16(1).Value(key).Int16(0));
  const std::string one_row = Msg('E', Body().CStr("").Int32(1));
  for (int i = 0; i < 2; ++i) {  // the first fills the cache, the second is answered from it
    EXPECT_EQ(
        exchange(bind_many + describe + Msg('E', Body().CStr("").Int32(0)) + Msg('S', Body())),
        "2TD(1)D(2)D(3)C(SELECT 3)Z");
  }
  // Without Describe: one fill, then the same portal in parts from the cache.
  const int64_t before = Calls("%generate_series%");
  EXPECT_EQ(exchange(bind_many + Msg('E', Body().CStr("").Int32(0)) + Msg('S', Body())),
            "2D(1)D(2)D(3)C(SELECT 3)Z");
  const std::string parts = bind_many + one_row + one_row + one_row + one_row + Msg('S', Body());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(exchange(parts), "2D(1)sD(2)sD(3)sC(SELECT 0)Z");
  }
  EXPECT_EQ(Calls("%generate_series%"), before + 1) << "the parts came from the cache";
  // The server's own answer to the same requests (the statement with cache=off, on the
  // primary: the replica may not have replayed the row yet) is the same.
  ASSERT_EQ(
      exchange(
          Msg('P',
              Body().CStr("raw_o").CStr("/* shardgate: cache=off, primary */ " + many).Int16(0)) +
          Msg('S', Body())),
      "1Z");
  const std::string server_parts =
      exchange(Msg('B', Body().CStr("").CStr("raw_o").Int16(0).Int16(1).Value(key).Int16(0)) +
               one_row + one_row + one_row + one_row + Msg('S', Body()));
  EXPECT_EQ(server_parts, "2D(1)sD(2)sD(3)sC(SELECT 0)Z");
  EXPECT_EQ(Calls("%generate_series%"), before + 2);
  sock->Release();
  EXPECT_EQ(RunSql(conn, "SELECT 1").Scalar(), "1");
}

// A reload that turns the cache on: sessions logged in before it track their writes too (else
// their writes would leave stale entries), and one that turns it off stops answering from it.
TEST_F(QueryCacheTest, AReloadTurnsTheCacheOnAndOffForEverySession) {
  std::string off_yaml = Options().extra_database_yaml;
  off_yaml.erase(off_yaml.find("    query_cache:"), off_yaml.find('\n') + 1);
  const std::string cached_table = ", cache: 30s}";
  off_yaml.replace(off_yaml.find(cached_table), cached_table.size(), "}");
  ASSERT_EQ(off_yaml.find("cache"), std::string::npos) << off_yaml;
  const int port = FreePort(), http = FreePort();
  // Its own /metrics (fresh counters).
  auto yaml_of = [&](const std::string& db_yaml) { return env().Yaml(port, db_yaml, http); };
  ASSERT_OK_AND_ASSIGN(auto proxy, ShardgateProcess::Start(yaml_of(off_yaml), port));
  ASSERT_OK_AND_ASSIGN(PgConn before, PgConn::Connect(proxy->ConnString()));
  const int64_t k = FreshKey();
  ASSERT_OK(before.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 1)")));

  auto reload = [&](const std::string& db_yaml) {
    std::FILE* f = std::fopen(proxy->config_path().c_str(), "w");
    ASSERT_NE(f, nullptr);
    const std::string text = yaml_of(db_yaml);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    ASSERT_OK_AND_ASSIGN(PgConn admin,
                         PgConn::Connect(proxy->ConnString("shardgate", "admin", "admin")));
    ASSERT_OK(admin.Exec("RELOAD"));
  };
  reload(Options().extra_database_yaml);
  ASSERT_OK_AND_ASSIGN(PgConn after, PgConn::Connect(proxy->ConnString()));
  const std::string read =
      absl::StrCat("SELECT balance" + Cols(10) + " FROM accounts WHERE id = ", k);
  EXPECT_EQ(RunSql(after, read).Scalar(), "1");
  EXPECT_EQ(RunSql(after, read).Scalar(), "1");
  EXPECT_EQ(Calls(Pattern("balance", 10, "accounts")), 1) << "the cache is on after the reload";
  ASSERT_OK(before.Exec(absl::StrCat("UPDATE accounts SET balance = 2 WHERE id = ", k)));
  EXPECT_EQ(RunSql(after, read).Scalar(), "2") << "a write of a session older than the reload";
  // The lookups so far: miss, hit, miss (after the write); one store each miss, one entry
  // dropped by the write.
  const std::string metrics = "\n" + HttpGet(http, "/metrics").second;
  EXPECT_EQ(Sample(metrics, R"(shardgate_query_cache_lookups_total{database="app",result="hit"})"),
            1)
      << metrics;
  EXPECT_EQ(Sample(metrics, R"(shardgate_query_cache_lookups_total{database="app",result="miss"})"),
            2);
  EXPECT_EQ(Sample(metrics, R"(shardgate_query_cache_stores_total{database="app"})"), 2);
  EXPECT_EQ(Sample(metrics,
                   R"(shardgate_query_cache_dropped_total{database="app",reason="invalidated"})"),
            1);
  EXPECT_EQ(Sample(metrics, R"(shardgate_query_cache_entries{database="app"})"), 1);

  reload(off_yaml);
  ASSERT_OK(env().CatchUp());  // reads go to the replica again
  EXPECT_EQ(RunSql(after, read).Scalar(), "2");
  EXPECT_EQ(RunSql(after, read).Scalar(), "2");
  EXPECT_EQ(Calls(Pattern("balance", 10, "accounts")), 4) << "the cache is off again";
}

TEST_F(QueryCacheTest, WhatIsNeverCached) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  const int64_t k = FreshKey();
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (", k, ", 5)")));
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO plain (id, v) VALUES (", k, ", 'p')")));
  auto twice = [&](const std::string& sql) {
    for (int i = 0; i < 2; ++i) {
      Outcome o = RunSql(conn, sql);
      EXPECT_TRUE(o.ok) << sql << ": " << o.Describe();
    }
  };
  // A table without cache: ...
  twice(absl::StrCat("SELECT v" + Cols(1) + " FROM plain WHERE id = ", k));
  EXPECT_EQ(Calls(Pattern("v", 1, "plain")), 2);
  // ... unless a hint asks; and a write to it invalidates as for any table.
  const std::string hinted =
      absl::StrCat("/* shardgate: cache=30s */ SELECT v" + Cols(2) + " FROM plain WHERE id = ", k);
  twice(hinted);
  EXPECT_EQ(Calls(Pattern("v", 2, "plain")), 1);
  ASSERT_OK(conn.Exec(absl::StrCat("UPDATE plain SET v = 'q' WHERE id = ", k)));
  EXPECT_EQ(RunSql(conn, hinted).Scalar(), "q");
  // cache=off on a cached table.
  twice(absl::StrCat("/* shardgate: cache=off */ SELECT balance" + Cols(4) +
                         " FROM accounts "
                         "WHERE id = ",
                     k));
  EXPECT_EQ(Calls(Pattern("balance", 4, "accounts")), 2);
  // Inside a transaction.
  ASSERT_OK(conn.Exec("BEGIN"));
  twice(absl::StrCat("SELECT balance" + Cols(5) + " FROM accounts WHERE id = ", k));
  ASSERT_OK(conn.Exec("COMMIT"));
  EXPECT_EQ(Calls(Pattern("balance", 5, "accounts")), 2);
  // An error.
  for (int i = 0; i < 2; ++i) {
    Outcome o = RunSql(conn, absl::StrCat("SELECT balance / 0 AS never_err FROM accounts WHERE "
                                          "id = ",
                                          k));
    EXPECT_EQ(o.sqlstate, "22012") << o.Describe();
  }
  // A read that writes (nextval, FOR UPDATE).
  twice(absl::StrCat("SELECT balance" + Cols(6) + " FROM accounts WHERE id = ", k, " FOR UPDATE"));
  EXPECT_EQ(Calls(Pattern("balance", 6, "accounts")), 2);
  // Past the TTL.
  const std::string short_ttl = absl::StrCat(
      "/* shardgate: cache=1s */ SELECT balance" + Cols(7) + " FROM accounts WHERE id = ", k);
  twice(short_ttl);
  EXPECT_EQ(Calls(Pattern("balance", 7, "accounts")), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(RunSql(conn, short_ttl).Scalar(), "5");
  EXPECT_EQ(Calls(Pattern("balance", 7, "accounts")), 2);
  // Another user's read is its own entry (privileges, row security).
  ASSERT_OK(env().ExecOnPrimaries("GRANT SELECT ON accounts TO app_md5"));
  ASSERT_OK_AND_ASSIGN(PgConn md5,
                       PgConn::Connect(env().proxy->ConnString("app", kMd5User, kMd5Password)));
  const std::string shared =
      absl::StrCat("SELECT balance" + Cols(8) + " FROM accounts WHERE id = ", k);
  twice(shared);
  EXPECT_EQ(RunSql(md5, shared).Scalar(), "5");
  EXPECT_EQ(Calls(Pattern("balance", 8, "accounts")), 2);
  // A session routing hint sends the same text to another shard: not the same entry.
  ASSERT_OK(conn.Exec(absl::StrCat("INSERT INTO accounts (id, balance) VALUES (",
                                   env().KeysOn("accounts", 1, 1)[0], ", 6)")));
  const std::string count = "SELECT count(*) FROM accounts /* shardgate: cache=30s */";
  ASSERT_OK(conn.Exec("SET shardgate.shard = 's0'"));
  const std::string on_s0 = RunSql(conn, count).Scalar();
  ASSERT_OK(conn.Exec("SET shardgate.shard = 's1'"));
  const std::string on_s1 = RunSql(conn, count).Scalar();
  ASSERT_OK(conn.Exec("RESET shardgate.shard"));
  ASSERT_OK_AND_ASSIGN(PgConn direct1, env().ConnectDirect({1, -1}));
  EXPECT_EQ(on_s1, direct1.Scalar("SELECT count(*) FROM accounts").value_or("?"));
  EXPECT_NE(on_s0, on_s1);
  // A bad hint is the client's error, not a silent miss.
  Outcome bad = RunSql(conn, "/* shardgate: cache=soon */ SELECT 1");
  EXPECT_EQ(bad.sqlstate, "42601") << bad.Describe();
  EXPECT_THAT(bad.hint, HasSubstr("cache=30s"));
}

}  // namespace
}  // namespace shardgate::testing
