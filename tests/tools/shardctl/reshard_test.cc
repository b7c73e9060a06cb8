// Online resharding end to end: real primaries with streaming replicas, a real shardgate, the
// real shardctl, and a write load through the proxy for the whole reshard that keeps a ledger
// of what it committed. Afterwards every row must be on exactly the shard the new map names,
// equal to the ledger (nothing lost, nothing duplicated), and no client transaction may have
// failed except with the documented retry-able 40001 during the pause.
//
// Cases: a hash ring growing from 2 to 3 shards; directory entries moved to a shard of their
// own; a range split; shardctl killed in the middle of the copy and of the catch-up, then run
// again; abort; what plan says of modulo N -> M.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "conf/config.h"
#include "routing/shard_map.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/shardctl_run.h"

namespace shardgate {
namespace {

using testing::FreePort;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::PgCluster;
using testing::ShardgateProcess;
using testing::Shardctl;
using testing::Shell;


// A libpq connection with errors as SQLSTATEs.
class Conn {
 public:
  explicit Conn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {}
  ~Conn() { PQfinish(c_); }
  bool ok() const { return PQstatus(c_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(c_); }
  // "" on success, else the SQLSTATE ("08006" when the connection broke).
  std::string Exec(const std::string& sql, std::vector<std::vector<std::string>>* rows = nullptr) {
    PGresult* r = PQexec(c_, sql.c_str());
    std::string state;
    const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      const char* s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
      state = s ? s : "08006";
      last_error_ = r ? PQresultErrorMessage(r) : PQerrorMessage(c_);
    } else if (rows != nullptr) {
      rows->clear();
      for (int i = 0; i < PQntuples(r); ++i) {
        std::vector<std::string> row;
        for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
        rows->push_back(std::move(row));
      }
    }
    PQclear(r);
    return state;
  }
  const std::string& last_error() const { return last_error_; }

 private:
  PGconn* c_;
  std::string last_error_;
};

std::string ServerYaml(const testing::PgServer& s) {
  return absl::StrCat("{host: 127.0.0.1, port: ", s.port(), ", dbname: app}");
}

// The proxy's YAML with shards `shards` of the cluster and `body` (routers:, tables:).
std::string Yaml(PgCluster& cluster, int port, const std::vector<int>& shards,
                 const std::string& body, const std::string& pause_max = "5s") {
  std::string y = absl::StrCat(
      "listen: {host: 127.0.0.1, port: ", port, "}\nworkers: 2\nadmin:\n  users: [admin]\n",
      "users:\n  - {name: postgres, password: postgres}\n  - {name: app, password: app_pw}\n",
      "  - {name: admin, password: admin}\nreshard: {pause_max: ", pause_max, "}\n",
      "databases:\n  app:\n    pool_size: 10\n    max_replica_lag: 30s\n    shards:\n");
  for (int s : shards) {
    auto& servers = cluster.shard(s);
    absl::StrAppend(&y, "      - name: s", s, "\n        primary: ",
                    ServerYaml(*servers.primary), "\n");
    if (!servers.replicas.empty()) {
      absl::StrAppend(&y, "        replicas: [", ServerYaml(*servers.replicas[0]), "]\n");
    }
  }
  return y + body;
}

void WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

std::string ReadFile(const std::string& path) {
  std::string text;
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

// The write load: `writers` threads, each owning the users whose id % writers is its number
// (so each thread's ledger is exact), plus a reader. Runs until Stop().
class Load {
 public:
  Load(std::string conninfo, int writers, int64_t preloaded, std::vector<int64_t> hot)
      : conninfo_(std::move(conninfo)), writers_(writers), preloaded_(preloaded),
        hot_(std::move(hot)), users_(writers), orders_(writers) {
    for (int64_t id = 1; id <= preloaded_; ++id) users_[id % writers_][id] = 0;
  }

  ~Load() { Stop(); }

  void Start() {
    for (int t = 0; t < writers_; ++t) threads_.emplace_back([this, t] { Writer(t); });
    threads_.emplace_back([this] { Reader(); });
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  // What the load committed: id -> balance, order id -> "user_id amount".
  std::map<int64_t, int64_t> Users() const {
    std::map<int64_t, int64_t> all;
    for (const auto& m : users_) all.insert(m.begin(), m.end());
    return all;
  }
  std::map<int64_t, std::string> Orders() const {
    std::map<int64_t, std::string> all;
    for (const auto& m : orders_) all.insert(m.begin(), m.end());
    return all;
  }

  std::atomic<int64_t> committed{0}, retried{0}, reads{0};
  std::mutex mu;
  std::vector<std::string> failures;  // anything but a 40001 retry

 private:
  void Fail(const std::string& what) {
    std::lock_guard lock(mu);
    if (failures.size() < 20) failures.push_back(what);
  }

  void Writer(int t) {
    Conn c(conninfo_);
    if (!c.ok()) return Fail("connect: " + c.error());
    std::mt19937_64 rng(1234 + t);
    auto& users = users_[t];
    auto& orders = orders_[t];
    int64_t next_user = preloaded_ + 1;
    while (next_user % writers_ != t) ++next_user;
    int64_t next_order = 1'000'000'000LL * (t + 1);
    std::vector<int64_t> mine_hot;
    for (int64_t h : hot_) {
      if (h % writers_ == t) mine_hot.push_back(h);
    }
    for (int i = 0; i < 200000 && !stop_; ++i) {
      const int op = static_cast<int>(rng() % 10);
      int64_t u = 0;
      if (!mine_hot.empty() && rng() % 2 == 0) {
        u = mine_hot[rng() % mine_hot.size()];
      } else {
        auto it = users.lower_bound(static_cast<int64_t>(rng() % (next_user + 1)));
        u = it == users.end() ? users.begin()->first : it->first;
      }
      // Each op is retried on 40001 (the cutover's documented retry-able error).
      for (int attempt = 0; attempt < 5; ++attempt) {
        std::string state;
        if (op < 3) {
          state = c.Exec(absl::StrCat("INSERT INTO users (id, balance) VALUES (", next_user,
                                      ", 0)"));
          if (state.empty()) users[next_user] = 0, next_user += writers_;
        } else if (op < 9) {
          const int64_t d = static_cast<int64_t>(rng() % 100) + 1;
          state = c.Exec("BEGIN");
          if (state.empty()) {
            state = c.Exec(absl::StrCat("UPDATE users SET balance = balance + ", d,
                                        " WHERE id = ", u));
          }
          if (state.empty()) {
            state = c.Exec(absl::StrCat("INSERT INTO orders (id, user_id, amount) VALUES (",
                                        next_order, ", ", u, ", ", d, ")"));
          }
          if (state.empty()) state = c.Exec("COMMIT");
          if (state.empty()) {
            users[u] += d;
            orders[next_order] = absl::StrCat(u, " ", d);
            ++next_order;
          } else {
            c.Exec("ROLLBACK");
          }
        } else if (!orders.empty()) {
          auto it = orders.begin();
          std::advance(it, static_cast<long>(rng() % orders.size()));
          const std::string user_id = it->second.substr(0, it->second.find(' '));
          state = c.Exec(absl::StrCat("DELETE FROM orders WHERE id = ", it->first,
                                      " AND user_id = ", user_id));
          if (state.empty()) orders.erase(it);
        }
        if (state.empty()) {
          ++committed;
          // Paced (~500 operations/s per writer): writes flow through every phase, cutover
          // pause included, without the CPU of an unthrottled load on a 2-core CI host.
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          break;
        }
        if (state != "40001") {
          Fail(absl::StrCat("op ", op, ": ", state, " ", c.last_error()));
          return;
        }
        ++retried;
      }
    }
  }

  void Reader() {
    Conn c(conninfo_);
    if (!c.ok()) return Fail("reader connect: " + c.error());
    std::mt19937_64 rng(99);
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < 1000000 && !stop_; ++i) {
      const std::string state = c.Exec(
          absl::StrCat("SELECT balance FROM users WHERE id = ", 1 + rng() % preloaded_), &rows);
      if (!state.empty()) return Fail("read: " + state + " " + c.last_error());
      ++reads;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  std::string conninfo_;
  int writers_;
  int64_t preloaded_;
  std::vector<int64_t> hot_;
  std::vector<std::map<int64_t, int64_t>> users_;        // per writer
  std::vector<std::map<int64_t, std::string>> orders_;   // per writer
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

class ReshardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = PgCluster::Start(3, 1);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster).release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void TearDown() override {
    proxy_.reset();
    // Each case starts from empty tables and no slot.
    for (int s = 0; s < 3; ++s) {
      auto& p = *cluster_->shard(s).primary;
      (void)p.Query(
          "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
          "WHERE slot_name LIKE 'sg_rs_%'");
      // The reshard's DDL guard first: while it is there it may refuse the DROP TABLE, and the
      // next case would find last case's tables.
      (void)p.Query("DROP EVENT TRIGGER IF EXISTS shardgate_reshard_guard_ddl_command_end");
      (void)p.Query("DROP EVENT TRIGGER IF EXISTS shardgate_reshard_guard_sql_drop");
      absl::Status dropped = p.Query("DROP TABLE IF EXISTS users, orders, countries").status();
      EXPECT_TRUE(dropped.ok()) << "shard " << s << ": " << dropped;
      (void)p.Query("DO $$ DECLARE r record; BEGIN FOR r IN SELECT pubname FROM pg_publication "
                    "LOOP EXECUTE 'DROP PUBLICATION ' || quote_ident(r.pubname); END LOOP; END $$");
    }
  }

  // Starts shardgate on the old map, creates the tables through it and loads `users` rows.
  void StartOn(const std::vector<int>& old_shards, const std::string& old_body,
               const std::vector<int>& new_shards, const std::string& new_body, int64_t users,
               const std::string& pause_max = "5s") {
    port_ = FreePort();
    old_yaml_ = Yaml(*cluster_, port_, old_shards, old_body, pause_max);
    const std::string& old_yaml = old_yaml_;
    new_yaml_ = Yaml(*cluster_, port_, new_shards, new_body);
    auto proxy = ShardgateProcess::Start(old_yaml, port_);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(*proxy);
    new_path_ = proxy_->config_path() + ".new.yaml";
    WriteFile(new_path_, new_yaml_);
    // New shards get their tables from shardctl (pg_dump); the app role must exist there,
    // which the fixture's initdb gives every server.
    Conn c(proxy_->ConnString("app", "postgres", "postgres"));
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_EQ(c.Exec("CREATE TABLE users (id bigint PRIMARY KEY, balance bigint NOT NULL)"), "")
        << c.last_error();
    ASSERT_EQ(c.Exec("CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, "
                     "amount bigint NOT NULL)"),
              "")
        << c.last_error();
    ASSERT_EQ(c.Exec("CREATE TABLE countries (code text PRIMARY KEY, name text)"), "")
        << c.last_error();
    ASSERT_EQ(c.Exec("GRANT ALL ON users, orders, countries TO app"), "") << c.last_error();
    ASSERT_EQ(c.Exec("INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany')"), "")
        << c.last_error();
    for (int64_t from = 1; from <= users; from += 1000) {
      std::string values;
      for (int64_t id = from; id < from + 1000 && id <= users; ++id) {
        absl::StrAppend(&values, values.empty() ? "" : ", ", "(", id, ", 0)");
      }
      ASSERT_EQ(c.Exec("INSERT INTO users (id, balance) VALUES " + values), "") << c.last_error();
    }
  }

  std::string Ctl(const std::string& rest) const {
    return absl::StrCat("--config ", proxy_->config_path(), " ", rest);
  }

  // Every shard's rows read directly from its primary: id -> shards holding it.
  void CheckPlacement(const Load& load, const std::vector<int>& shards) {
    auto config = conf::LoadString(new_yaml_);
    ASSERT_TRUE(config.ok()) << config.status();
    auto map = routing::ShardMap::Build(*(*config)->FindDatabase("app"));
    ASSERT_TRUE(map.ok()) << map.status();
    const routing::Router* users_router = (*map)->FindTable("", "users")->router;
    std::map<int64_t, int64_t> users;
    std::map<int64_t, std::string> orders;
    for (int s : shards) {
      Conn c(cluster_->shard(s).primary->ConnString());
      ASSERT_TRUE(c.ok()) << c.error();
      std::vector<std::vector<std::string>> rows;
      ASSERT_EQ(c.Exec("SELECT id, balance FROM users", &rows), "") << c.last_error();
      for (const auto& r : rows) {
        const int64_t id = std::stoll(r[0]);
        auto owner = users_router->Route(routing::KeyValue::Int(id));
        ASSERT_TRUE(owner.ok());
        EXPECT_EQ((*map)->shard_name(*owner), absl::StrCat("s", s)) << "user " << id;
        EXPECT_TRUE(users.emplace(id, std::stoll(r[1])).second) << "user " << id << " twice";
      }
      ASSERT_EQ(c.Exec("SELECT id, user_id, amount FROM orders", &rows), "") << c.last_error();
      for (const auto& r : rows) {
        auto owner = users_router->Route(routing::KeyValue::Int(std::stoll(r[1])));
        ASSERT_TRUE(owner.ok());
        EXPECT_EQ((*map)->shard_name(*owner), absl::StrCat("s", s)) << "order " << r[0];
        EXPECT_TRUE(orders.emplace(std::stoll(r[0]), r[1] + " " + r[2]).second)
            << "order " << r[0] << " twice";
      }
      ASSERT_EQ(c.Exec("SELECT count(*) FROM countries", &rows), "") << c.last_error();
      EXPECT_EQ(rows[0][0], "2") << "reference table on s" << s;
      ASSERT_EQ(c.Exec("SELECT count(*) FROM pg_replication_slots", &rows), "");
      EXPECT_EQ(rows[0][0], "0") << "slots left on s" << s;
    }
    const auto ledger_users = load.Users();
    const auto ledger_orders = load.Orders();
    EXPECT_EQ(users.size(), ledger_users.size());
    EXPECT_EQ(orders.size(), ledger_orders.size());
    EXPECT_TRUE(users == ledger_users) << "users differ from the ledger";
    EXPECT_TRUE(orders == ledger_orders) << "orders differ from the ledger";
    // And through the proxy, on the new map.
    Conn c(proxy_->ConnString());
    std::vector<std::vector<std::string>> rows;
    ASSERT_EQ(c.Exec("/* shardgate: primary */ SELECT count(*), sum(balance) FROM users", &rows),
              "")
        << c.last_error();
    int64_t sum = 0;
    for (const auto& [id, b] : ledger_users) sum += b;
    EXPECT_EQ(rows[0][0], std::to_string(ledger_users.size()));
    EXPECT_EQ(rows[0][1], std::to_string(sum));
  }

  // The whole reshard under load; `faults`: kill shardctl in the copy and in the catch-up.
  void ReshardUnderLoad(const std::vector<int>& new_shards, std::vector<int64_t> hot,
                        int64_t preloaded, bool faults) {
    Load load(proxy_->ConnString(), 4, preloaded, std::move(hot));
    Shell plan = Shardctl(Ctl("reshard plan --to " + new_path_));
    ASSERT_EQ(plan.code, 0) << plan.out;
    EXPECT_THAT(plan.out, HasSubstr(" move "));
    load.Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (faults) {
      Shell killed = Shardctl(Ctl("reshard start --to " + new_path_),
                              "SHARDCTL_TEST_FAULT=copy_rows=1000 ");
      EXPECT_EQ(killed.code, 70) << killed.out;
      EXPECT_THAT(killed.out, HasSubstr("test fault"));
    }
    Shell start = Shardctl(Ctl("reshard start --to " + new_path_));
    ASSERT_EQ(start.code, 0) << start.out;
    EXPECT_THAT(start.out, HasSubstr("copied users"));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (faults) {
      Shell killed = Shardctl(Ctl("reshard start --follow 5"),
                              "SHARDCTL_TEST_FAULT=apply_batches=2 ");
      EXPECT_EQ(killed.code, 70) << killed.out;
    }
    // What shardctl reported to the proxy (RESHARD PROGRESS), as SHOW RESHARD shows it: after
    // a resumed run too, the estimate of the rows scanned by copies an earlier run finished.
    {
      Conn admin(proxy_->ConnString("shardgate", "admin", "admin"));
      std::vector<std::vector<std::string>> rows;
      ASSERT_EQ(admin.Exec("SHOW RESHARD", &rows), "") << admin.last_error();
      ASSERT_EQ(rows.size(), 1u);
      ASSERT_EQ(rows[0].size(), 10u);
      EXPECT_EQ(rows[0][5], "catching_up");
      EXPECT_GT(std::stoll(rows[0][6]), 0) << "rows_copied";
      // The planner's estimate of the rows scanned (every source row): not exact.
      EXPECT_GE(std::stoll(rows[0][7]), preloaded / 2) << "source_rows";
      EXPECT_GE(std::stoll(rows[0][8]), 0) << "changes_applied";
      EXPECT_LT(std::stoll(rows[0][9]), 60) << "reported_s_ago";
    }
    Shell status = Shardctl(Ctl("--json reshard status"));
    ASSERT_EQ(status.code, 0) << status.out;
    EXPECT_THAT(status.out, HasSubstr("\"lag_bytes\""));
    Shell cutover = Shardctl(Ctl("--json reshard cutover"));
    ASSERT_EQ(cutover.code, 0) << cutover.out;
    EXPECT_THAT(cutover.out, HasSubstr("\"event\": \"cutover\""));
    EXPECT_THAT(cutover.out, HasSubstr("\"event\": \"done\""));
    // The measured pause, reported by the test's log.
    const size_t at = cutover.out.find("\"pause_ms\": ");
    ASSERT_NE(at, std::string::npos);
    const int64_t pause_ms = std::stoll(cutover.out.substr(at + 12));
    std::printf("cutover pause: %lld ms (%s)\n", static_cast<long long>(pause_ms),
                cutover.out.substr(at, cutover.out.find('}', at) - at).c_str());
    EXPECT_LT(pause_ms, 5000) << "bounded by reshard.pause_max";
    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // writes on the new map
    load.Stop();
    std::printf("load: %lld committed, %lld retried (40001), %lld reads\n",
                static_cast<long long>(load.committed.load()),
                static_cast<long long>(load.retried.load()),
                static_cast<long long>(load.reads.load()));
    EXPECT_THAT(load.failures, ::testing::IsEmpty());
    EXPECT_GT(load.committed.load(), 100);
    Shell verify = Shardctl(Ctl("reshard verify"));
    EXPECT_EQ(verify.code, 0) << verify.out;
    CheckPlacement(load, new_shards);
  }

  static PgCluster* cluster_;
  std::unique_ptr<ShardgateProcess> proxy_;
  int port_ = 0;
  std::string old_yaml_, new_yaml_, new_path_;
};

PgCluster* ReshardTest::cluster_ = nullptr;

constexpr char kTables[] =
    "    tables:\n"
    "      users: {key: id, router: r}\n"
    "      orders: {key: user_id, router: r}\n"
    "      countries: {reference: true}\n";

TEST_F(ReshardTest, HashRingTwoToThreeUnderLoad) {
  StartOn({0, 1}, std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1]}\n") + kTables,
          {0, 1, 2}, std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1, s2]}\n") + kTables,
          3000);
  ReshardUnderLoad({0, 1, 2}, {}, 3000, /*faults=*/false);
}

TEST_F(ReshardTest, DirectoryEntriesToTheirOwnShardUnderLoad) {
  // Users 1..12 are the "hot tenants": on s0 with everyone else on s1, then on s2 alone.
  std::string old_entries, new_entries;
  std::vector<int64_t> hot;
  for (int id = 1; id <= 12; ++id) {
    absl::StrAppend(&old_entries, id == 1 ? "" : ", ", id, ": s0");
    absl::StrAppend(&new_entries, id == 1 ? "" : ", ", id, ": s2");
    hot.push_back(id);
  }
  const std::string old_body = absl::StrCat(
      "    routers:\n      r: {type: directory, key_type: bigint, entries: {", old_entries,
      "}, default: s1}\n", kTables);
  const std::string new_body = absl::StrCat(
      "    routers:\n      r: {type: directory, key_type: bigint, entries: {", new_entries,
      "}, default: s1}\n", kTables);
  StartOn({0, 1, 2}, old_body, {0, 1, 2}, new_body, 2000);
  ReshardUnderLoad({0, 1, 2}, hot, 2000, /*faults=*/false);
}

// Issue 10: "celebrity" users 7 and 42 get shard s2 of their own with `shardctl hotkey move`:
// a directory in front of the ring (fallback:), written into the running config; every other
// user stays where the unchanged ring has it. Both moves run under the write load.
TEST_F(ReshardTest, HotkeyMoveGivesHotKeysAShardOfTheirOwnUnderLoad) {
  const std::string body = std::string("    routers:\n      # the users' ring\n") +
                           "      r: {type: hash_ring, shards: [s0, s1]}\n" + kTables;
  StartOn({0, 1, 2}, body, {0, 1, 2}, body, 2000);
  const std::string config = proxy_->config_path();
  const std::string out = config + ".hotkey.yaml";
  // --dry-run: the map and the plan (user 7 and no other; orders has no rows yet).
  Shell dry = Shardctl(Ctl("--json hotkey move --table users --key 7 --to s2 --dry-run"));
  ASSERT_EQ(dry.code, 0) << dry.out;
  EXPECT_THAT(dry.out, HasSubstr("\"router\": \"r_pinned\", \"created\": true"));
  EXPECT_THAT(dry.out, HasSubstr("\"repointed\": [\"orders\", \"users\"]"));
  EXPECT_THAT(dry.out, HasSubstr("{\"event\": \"plan\", \"moving_rows\": 1,"));
  EXPECT_THAT(dry.out, HasSubstr("\"event\": \"dry_run\""));
  EXPECT_EQ(ReadFile(config), old_yaml_) << "a dry run leaves the running map alone";
  EXPECT_EQ(ReadFile(out).find("entries: {7: s2}"), ReadFile(out).find("entries: {"));

  Load load(proxy_->ConnString(), 4, 2000, {7, 42});
  load.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Shell first = Shardctl(Ctl("--json hotkey move --table users --key 7 --to s2"));
  ASSERT_EQ(first.code, 0) << first.out;
  for (const char* event : {"map", "plan", "ready", "cutover", "done", "verified", "moved"}) {
    EXPECT_THAT(first.out, HasSubstr(absl::StrCat("{\"event\": \"", event, "\""))) << event;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The second key joins the directory the first one made (through orders: same router).
  Shell second = Shardctl(Ctl("hotkey move --table orders --key 42 --to s2"));
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_THAT(second.out, HasSubstr("through directory router r_pinned\n"));
  EXPECT_THAT(second.out, HasSubstr("moved to s2"));
  EXPECT_THAT(second.out, Not(HasSubstr("NOTE"))) << "s2 is not a shard of the ring";
  Shell again = Shardctl(Ctl("hotkey move --table users --key 42 --to s2"));
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_THAT(again.out, HasSubstr("already routes to s2"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // writes on the new map
  load.Stop();
  EXPECT_THAT(load.failures, ::testing::IsEmpty());
  EXPECT_GT(load.committed.load(), 100);

  // The running config is the old text with the three edits (the comment kept).
  std::string expected = old_yaml_;
  const std::string ring = "      r: {type: hash_ring";
  expected.insert(expected.find(ring),
                  "      r_pinned: {type: directory, fallback: r, entries: {42: s2, 7: s2}}\n");
  for (const char* t : {"users: {key: id, router: r}", "orders: {key: user_id, router: r}"}) {
    const size_t at = expected.find(t);
    ASSERT_NE(at, std::string::npos);
    expected.insert(at + std::strlen(t) - 1, "_pinned");
  }
  new_yaml_ = ReadFile(config);
  EXPECT_EQ(new_yaml_, expected);
  // Only the two users' rows moved: s2 holds exactly them.
  Conn s2(cluster_->shard(2).primary->ConnString());
  std::vector<std::vector<std::string>> rows;
  ASSERT_EQ(s2.Exec("SELECT id FROM users ORDER BY id", &rows), "") << s2.last_error();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "7");
  EXPECT_EQ(rows[1][0], "42");
  CheckPlacement(load, {0, 1, 2});
}

TEST_F(ReshardTest, KilledInTheCopyAndInTheCatchUpThenResumed) {
  StartOn({0, 1}, std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1]}\n") + kTables,
          {0, 1, 2}, std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1, s2]}\n") + kTables,
          9000);
  ReshardUnderLoad({0, 1, 2}, {}, 9000, /*faults=*/true);
}

TEST_F(ReshardTest, RangeSplitUnderLoad) {
  // Keys below 1000 lived on s0; [500, 1000) now go to s2: exactly 500 preloaded users move.
  StartOn({0, 1},
          std::string("    routers:\n      r: {type: range, ranges: [{to: 1000, shard: s0}, "
                      "{shard: s1}]}\n") + kTables,
          {0, 1, 2},
          std::string("    routers:\n      r: {type: range, ranges: [{to: 500, shard: s0}, "
                      "{to: 1000, shard: s2}, {shard: s1}]}\n") + kTables,
          2000);
  Shell plan = Shardctl(Ctl("--json reshard plan --to " + new_path_));
  ASSERT_EQ(plan.code, 0) << plan.out;
  EXPECT_THAT(plan.out, HasSubstr("{\"event\": \"plan_rows\", \"table\": \"users\", "
                                  "\"from\": \"s0\", \"to\": \"s2\", \"rows\": 500, "
                                  "\"moves\": true}"));
  ReshardUnderLoad({0, 1, 2}, {}, 2000, /*faults=*/false);
}

TEST_F(ReshardTest, PlanSaysModuloMovesAlmostEverything) {
  StartOn({0, 1},
          std::string("    routers:\n      r: {type: modulo, shards: [s0, s1]}\n") + kTables,
          {0, 1, 2},
          std::string("    routers:\n      r: {type: modulo, shards: [s0, s1, s2]}\n") + kTables,
          3000);
  Shell plan = Shardctl(Ctl("reshard plan --to " + new_path_));
  ASSERT_EQ(plan.code, 0) << plan.out;
  EXPECT_THAT(plan.out, HasSubstr("modulo 2 -> 3 moves almost every row"));
  // Two thirds of the rows change shard (a ring would move one third).
  const size_t at = plan.out.find("Moving ");
  ASSERT_NE(at, std::string::npos) << plan.out;
  const int64_t moving = std::stoll(plan.out.substr(at + 7));
  EXPECT_GT(moving, 1700) << plan.out;
}

TEST_F(ReshardTest, CutoverThatCannotDrainResumesOnTheOldMap) {
  const std::string ring2 =
      std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1]}\n") + kTables;
  const std::string ring3 =
      std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1, s2]}\n") + kTables;
  // A pause of at most 1 ms cannot hold a drain: the cutover must give up and resume.
  StartOn({0, 1}, ring2, {0, 1, 2}, ring3, 1000, "1ms");
  Shell start = Shardctl(Ctl("reshard start --to " + new_path_));
  ASSERT_EQ(start.code, 0) << start.out;
  Shell cutover = Shardctl(Ctl("reshard cutover"));
  EXPECT_EQ(cutover.code, 1) << cutover.out;
  EXPECT_THAT(cutover.out, HasSubstr("Writes resumed on the old map"));
  // The proxy is not paused and still routes by the old map: a key the new ring gives s2 goes
  // to its old owner, and reaches s2 later through the stream.
  auto config = conf::LoadString(new_yaml_);
  ASSERT_TRUE(config.ok());
  auto map = routing::ShardMap::Build(*(*config)->FindDatabase("app"));
  ASSERT_TRUE(map.ok());
  int64_t moving = 5000;
  while ((*map)->shard_name(*(*map)->FindTable("", "users")->router->Route(
             routing::KeyValue::Int(moving))) != "s2") {
    ++moving;
  }
  Conn c(proxy_->ConnString());
  ASSERT_EQ(c.Exec(absl::StrCat("INSERT INTO users (id, balance) VALUES (", moving, ", 7)")), "")
      << c.last_error();
  std::vector<std::vector<std::string>> rows;
  Conn admin(proxy_->ConnString("shardgate", "admin", "admin"));
  ASSERT_EQ(admin.Exec("SHOW RESHARD", &rows), "") << admin.last_error();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][2], "no");
  // With a sane pause the same cutover goes through, and the row is where the new map says.
  std::string sane = old_yaml_;
  sane.replace(sane.find("pause_max: 1ms"), 14, "pause_max: 5s");
  WriteFile(proxy_->config_path(), sane);
  cutover = Shardctl(Ctl("reshard cutover"));
  ASSERT_EQ(cutover.code, 0) << cutover.out;
  Conn s2(cluster_->shard(2).primary->ConnString());
  ASSERT_EQ(s2.Exec(absl::StrCat("SELECT balance FROM users WHERE id = ", moving), &rows), "");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "7");
  ASSERT_EQ(c.Exec(absl::StrCat("UPDATE users SET balance = 8 WHERE id = ", moving)), "")
      << c.last_error();
  ASSERT_EQ(s2.Exec(absl::StrCat("SELECT balance FROM users WHERE id = ", moving), &rows), "");
  EXPECT_EQ(rows[0][0], "8");
}

TEST_F(ReshardTest, AbortBeforeCutoverLeavesTheOldMapServing) {
  StartOn({0, 1}, std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1]}\n") + kTables,
          {0, 1, 2}, std::string("    routers:\n      r: {type: hash_ring, shards: [s0, s1, s2]}\n") + kTables,
          1000);
  Shell start = Shardctl(Ctl("reshard start --to " + new_path_));
  ASSERT_EQ(start.code, 0) << start.out;
  // A schema change on a moving table is refused while the reshard runs.
  {
    Conn c(cluster_->shard(0).primary->ConnString());
    std::vector<std::vector<std::string>> rows;
    EXPECT_EQ(c.Exec("ALTER TABLE users ADD COLUMN note text"), "55006") << c.last_error();
    EXPECT_THAT(c.last_error(), HasSubstr("being resharded"));
  }
  // A second reshard to another map is refused while this one is open.
  Shell other = Shardctl(Ctl("reshard start --to " + proxy_->config_path()));
  EXPECT_EQ(other.code, 1) << other.out;
  EXPECT_THAT(other.out, HasSubstr("in progress"));
  Shell abort = Shardctl(Ctl("reshard abort"));
  ASSERT_EQ(abort.code, 0) << abort.out;
  std::vector<std::vector<std::string>> rows;
  Conn s2(cluster_->shard(2).primary->ConnString());
  ASSERT_EQ(s2.Exec("SELECT count(*) FROM users", &rows), "") << s2.last_error();
  EXPECT_EQ(rows[0][0], "0");
  for (int s = 0; s < 3; ++s) {
    Conn c(cluster_->shard(s).primary->ConnString());
    ASSERT_EQ(c.Exec("SELECT count(*) FROM pg_replication_slots", &rows), "");
    EXPECT_EQ(rows[0][0], "0");
    ASSERT_EQ(c.Exec("SELECT count(*) FROM pg_publication", &rows), "");
    EXPECT_EQ(rows[0][0], "0");
  }
  Conn c(proxy_->ConnString());
  ASSERT_EQ(c.Exec("SELECT count(*) FROM users", &rows), "") << c.last_error();
  EXPECT_EQ(rows[0][0], "1000");
  Conn owner(proxy_->ConnString("app", "postgres", "postgres"));
  EXPECT_EQ(owner.Exec("ALTER TABLE users ADD COLUMN note text"), "") << owner.last_error();
  // After an abort, cutover has nothing to do.
  Shell cutover = Shardctl(Ctl("reshard cutover"));
  EXPECT_EQ(cutover.code, 1) << cutover.out;
}

}  // namespace
}  // namespace shardgate
