// Steady state allocates nothing per message: shardgate_alloc_counted (the daemon with a
// counting operator new, tests/proxy/alloc_counter.cc) serves a routed single-shard database
// (a modulo router on the key, parsing on); after a warm-up, a run of transactions in each
// protocol mode may cost the whole process fewer than one C++ allocation per 20 transactions
// (what is left is background work: health checks, maintenance timers). Before the allocation
// work of issue 8 a transaction cost about 15.
#include <fstream>
#include <set>
#include <vector>

#include "tests/proxy/http_get.h"
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

constexpr int kWarmup = 300;
constexpr int kTransactions = 2000;
constexpr int kWindows = 3;

// The count the daemon last reported, once it has stopped changing (the reporter rewrites the
// file about every 20 ms while the count moves).
absl::StatusOr<uint64_t> SettledCount(const std::string& path) {
  auto read = [&]() -> std::optional<uint64_t> {
    std::ifstream in(path);
    uint64_t v = 0;
    if (in >> v) return v;
    return std::nullopt;
  };
  std::optional<uint64_t> last;
  for (int i = 0; i < 100; ++i) {  // up to 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::optional<uint64_t> now = read();
    if (now && last && *now == *last) return *now;
    last = now;
  }
  return absl::DeadlineExceededError("the allocation count did not settle (or was never written)");
}

class AllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = PgCluster::Start(1);
    ASSERT_OK(cluster.status());
    cluster_ = std::move(*cluster);
    {
      auto direct = PgConn::Connect(
          cluster_->shard(0).primary->ConnString("app", kScramUser, kScramPassword));
      ASSERT_OK(direct.status());
      ASSERT_OK(direct->Exec("create table accounts (id int primary key, balance int)"));
      ASSERT_OK(direct->Exec("insert into accounts select g, g from generate_series(1, 1000) g"));
    }
    report_ = absl::StrCat(::testing::TempDir(), "/alloc_report_", getpid());
    setenv("SHARDGATE_BIN", SHARDGATE_ALLOC_COUNTED_BINARY, 1);
    setenv("SHARDGATE_ALLOC_REPORT", report_.c_str(), 1);
    const int port = FreePort();
    ProxyEnvOptions options;
    options.pool_size = PoolSize();
    options.workers = PoolSize() > 0 ? 1 : 0;
    options.admin_http_port = http_port_;
    options.extra_database_yaml = absl::StrCat(
        "    routers:\n"
        "      by_id: {type: modulo, hash: postgres, shards: [s0]}\n"
        "    tables:\n"
        "      accounts: {key: id, router: by_id}\n",
        ExtraYaml());
    auto proxy = ShardgateProcess::Start(ProxyYaml(*cluster_, port, options), port);
    unsetenv("SHARDGATE_BIN");
    unsetenv("SHARDGATE_ALLOC_REPORT");
    ASSERT_OK(proxy.status());
    proxy_ = std::move(*proxy);
  }

  // The base test sends simple reads as written; AllocPrepareReadsTest runs them prepared
  // (prepare_reads, on by default).
  virtual std::string ExtraYaml() const { return "    prepare_reads: false\n"; }
  // > 0: that pool_size, with one worker; 0: the fixture's (20, 2 workers).
  virtual int PoolSize() const { return 0; }

  // Read i's answer checked too: a proxy that answered without asking the shard would not know
  // the balance.
  static absl::Status CheckBalance(PGconn* conn, const PGresult* res, int i) {
    RETURN_IF_ERROR(ResultStatus(res, conn));
    const std::string want = std::to_string(i % 1000 + 1);
    if (PQntuples(res) != 1 || Cell(res, 0, 0) != want) {
      return absl::InternalError(absl::StrCat("id ", want, ": wrong answer"));
    }
    return absl::OkStatus();
  }
  // Read i in the simple protocol.
  static absl::Status SimpleRead(PGconn* conn, int i) {
    PgResult res(PQexec(
        conn, absl::StrCat("SELECT balance FROM accounts WHERE id = ", i % 1000 + 1).c_str()));
    return CheckBalance(conn, res.get(), i);
  }

  // Allocations per transaction of `run(i)` over kTransactions, after kWarmup of them: the
  // lowest of kWindows runs of kTransactions. The proxy's periodic work (a health check, the
  // hot-key collection: a few dozen allocations every second or so, whatever the load) lands in
  // some windows; an allocation per message, or per a few hundred, shows in every one.
  double PerTransaction(const std::function<absl::Status(int)>& run) {
    auto run_n = [&](int n) {
      for (int i = 0; i < n; ++i) {
        absl::Status st = run(i);
        EXPECT_OK(st);
        if (!st.ok()) return false;
      }
      return true;
    };
    if (!run_n(kWarmup)) return -1;
    double lowest = -1;
    for (int w = 0; w < kWindows; ++w) {
      auto before = SettledCount(report_);
      EXPECT_OK(before.status());
      if (!run_n(kTransactions)) return -1;
      auto after = SettledCount(report_);
      EXPECT_OK(after.status());
      if (!before.ok() || !after.ok()) return -1;
      const double per_txn = static_cast<double>(*after - *before) / kTransactions;
      if (w == 0 || per_txn < lowest) lowest = per_txn;
    }
    return lowest;
  }

  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<ShardgateProcess> proxy_;
  std::string report_;
  const int http_port_ = FreePort();  // /metrics
};

TEST_F(AllocTest, SteadyStateAllocatesNothingPerTransaction) {
  auto conn = PgConn::Connect(proxy_->ConnString());
  ASSERT_OK(conn.status());
  auto check = [&](const PGresult* res, int i) { return CheckBalance(conn->get(), res, i); };
  const double simple = PerTransaction([&](int i) { return SimpleRead(conn->get(), i); });
  const double extended = PerTransaction([&](int i) {
    const std::string id = std::to_string(i % 1000 + 1);
    const char* values[] = {id.c_str()};
    PgResult res(PQexecParams(conn->get(), "SELECT balance FROM accounts WHERE id = $1", 1, nullptr,
                              values, nullptr, nullptr, 0));
    return check(res.get(), i);
  });
  PgResult prepared(
      PQprepare(conn->get(), "by_id", "SELECT balance FROM accounts WHERE id = $1", 1, nullptr));
  ASSERT_OK(ResultStatus(prepared.get(), conn->get()));
  const double named = PerTransaction([&](int i) {
    const std::string id = std::to_string(i % 1000 + 1);
    const char* values[] = {id.c_str()};
    PgResult res(PQexecPrepared(conn->get(), "by_id", 1, values, nullptr, nullptr, 0));
    return check(res.get(), i);
  });
  std::cerr << "allocations per transaction: simple " << simple << ", extended " << extended
            << ", prepared " << named << "\n";
  EXPECT_GE(simple, 0);
  EXPECT_LT(simple, 0.05);
  EXPECT_GE(extended, 0);
  EXPECT_LT(extended, 0.05);
  EXPECT_GE(named, 0);
  EXPECT_LT(named, 0.05);
}

// prepare_reads: the simple reads run as Bind/Execute of a statement prepared on the server,
// built in the session's reused buffers.
class AllocPrepareReadsTest : public AllocTest {
 protected:
  std::string ExtraYaml() const override { return ""; }  // prepare_reads' default: on
};

TEST_F(AllocPrepareReadsTest, PreparedReadsAllocateNothingPerTransaction) {
  auto conn = PgConn::Connect(proxy_->ConnString());
  ASSERT_OK(conn.status());
  const double simple = PerTransaction([&](int i) { return SimpleRead(conn->get(), i); });
  // They did run prepared: the statement is on the server connection that served them (one
  // client asking one thing at a time gets the same idle server connection back each time).
  auto n = conn->Scalar("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sg%'");
  ASSERT_OK(n.status());
  EXPECT_EQ(*n, "1") << "the statement prepare_reads prepared is not on the server";
  std::cerr << "allocations per transaction, simple reads prepared: " << simple << "\n";
  EXPECT_GE(simple, 0);
  EXPECT_LT(simple, 0.05);
}

// A pool smaller than its clients, the way a transaction pooler runs: 16 clients read at once
// through one server connection, so at any moment 15 wait for it in the pool's queue. Waiting
// allocates nothing either (a waiting client's place in the queue was a std::list node: 0.99
// allocations per transaction). Each waiting client holds five suspended coroutine frames; the
// numbers that come and go are what Asio's per-thread recycling cache must absorb (64 blocks,
// CMakeLists.txt; with its former 16, 0.04-1.2 allocations per transaction here). With 40
// clients over one connection some are still allocated anew (about 0.09 per transaction).
class AllocPoolWaitTest : public AllocTest {
 protected:
  std::string ExtraYaml() const override { return ""; }
  int PoolSize() const override { return 1; }
  // `extended`: each read is PQsendQueryParams' Parse/Bind/Describe/Execute/Sync batch (the
  // unnamed statement, which prepare_reads runs as its sg_ statement) instead of a Query.
  void ClientsTakeTurns(bool extended = false);
};

// pipeline_reads: the same 16 clients, whose reads are now sent behind each other on the one
// server connection (a Follower in each waiting session's frame, the connection handed on).
class AllocPipelineTest : public AllocPoolWaitTest {
 protected:
  std::string ExtraYaml() const override { return "    pipeline_reads: 16\n"; }
  void ExpectMostReadsFollowed() {
    const std::string metrics = "\n" + HttpGet(http_port_, "/metrics").second;
    const double sent = Sample(
        metrics, R"(shardgate_pipelined_reads_total{database="app",user="app",outcome="sent"})");
    EXPECT_GT(sent, kTransactions / 2) << "the reads did not follow each other\n" << metrics;
  }
};

TEST_F(AllocPoolWaitTest, ClientsWaitingForAServerAllocateNothingPerTransaction) {
  ClientsTakeTurns();
}

TEST_F(AllocPipelineTest, ReadsSentBehindOthersAllocateNothingPerTransaction) {
  ClientsTakeTurns();
  ExpectMostReadsFollowed();
}

// Whole extended-protocol batches sent behind each other (ArmExtendedRead's reused buffers).
TEST_F(AllocPipelineTest, ExtendedReadsSentBehindOthersAllocateNothingPerTransaction) {
  ClientsTakeTurns(/*extended=*/true);
  ExpectMostReadsFollowed();
}

void AllocPoolWaitTest::ClientsTakeTurns(bool extended) {
  constexpr int kClients = 16;
  std::vector<PgConn> conns;
  for (int c = 0; c < kClients; ++c) {
    auto conn = PgConn::Connect(proxy_->ConnString());
    ASSERT_OK(conn.status());
    conns.push_back(std::move(*conn));
  }
  // Every client sends its next read as soon as its last is answered, so the pool's queue never
  // runs dry between batches (only while the allocation count is read); reads are numbered in
  // the order sent. The server's process id comes back with each answer.
  std::set<std::string> pids;
  std::vector<int> current(kClients, -1);
  int next = 0, done = 0;
  auto send = [&](int c) -> absl::Status {
    current[c] = next++;
    static constexpr char kRead[] = "SELECT balance, pg_backend_pid() FROM accounts WHERE id = ";
    const std::string id = absl::StrCat(current[c] % 1000 + 1);
    const char* values[1] = {id.c_str()};
    const int sent = extended ? PQsendQueryParams(conns[c].get(), absl::StrCat(kRead, "$1").c_str(),
                                                  1, nullptr, values, nullptr, nullptr, 0)
                              : PQsendQuery(conns[c].get(), absl::StrCat(kRead, id).c_str());
    if (sent != 1) {
      return absl::InternalError(PQerrorMessage(conns[c].get()));
    }
    return absl::OkStatus();
  };
  // Until `n` more reads are answered; with `more`, an answered client sends its next read.
  auto pump = [&](int n, bool more) -> absl::Status {
    const int target = done + n;
    if (more) {
      for (int c = 0; c < kClients; ++c) {
        if (current[c] < 0) RETURN_IF_ERROR(send(c));
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (done < target) {
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(done, " of ", target, " reads answered"));
      }
      std::vector<pollfd> fds;
      std::vector<int> which;
      for (int c = 0; c < kClients; ++c) {
        if (current[c] < 0) continue;
        fds.push_back({PQsocket(conns[c].get()), POLLIN, 0});
        which.push_back(c);
      }
      if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) {
        return absl::InternalError("poll failed");
      }
      for (size_t k = 0; k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        const int c = which[k];
        PGconn* conn = conns[c].get();
        if (PQconsumeInput(conn) != 1) return absl::InternalError(PQerrorMessage(conn));
        while (current[c] >= 0 && PQisBusy(conn) == 0) {
          PgResult res(PQgetResult(conn));
          if (!res) {  // this read is over
            current[c] = -1;
            ++done;
            if (more) RETURN_IF_ERROR(send(c));
            break;
          }
          RETURN_IF_ERROR(CheckBalance(conn, res.get(), current[c]));
          pids.insert(Cell(res.get(), 0, 1));
        }
      }
    }
    return absl::OkStatus();
  };
  const double per_txn = PerTransaction([&](int i) {
    // PerTransaction runs one at a time; this runs them in batches of 100 over all clients.
    return i % 100 == 0 ? pump(100, true) : absl::OkStatus();
  });
  ASSERT_OK(pump(next - done, false));  // the reads still in flight
  // One server connection served them all: they took turns through the pool's queue.
  EXPECT_EQ(pids.size(), 1u);
  auto n = conns[0].Scalar("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sg%'");
  ASSERT_OK(n.status());
  EXPECT_EQ(*n, "1") << "the reads did not run prepared (prepare_reads)";
  std::cerr << "allocations per transaction, " << kClients
            << " clients over one server connection: " << per_txn << "\n";
  EXPECT_GE(per_txn, 0);
  // Stricter than the other tests' 1 in 20: with 64 blocks this comes out 0.0005-0.0045 also
  // with two more copies of the test running, with 16 blocks 0.038-1.2.
  EXPECT_LT(per_txn, 0.02);
}

}  // namespace
}  // namespace shardgate::testing
