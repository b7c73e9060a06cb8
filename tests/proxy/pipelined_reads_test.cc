// pipeline_reads: with every server connection busy, prepare_reads reads of other clients are
// sent on a connection behind the read it is running and answered in turn. One server
// connection (pool_size 1) and twelve clients asking at once, so that most reads follow
// another: each client must get its own answer (values, errors, its own DateStyle), writes and
// transactions in between too, through an unsharded and a routed proxy; and when the
// connection is lost under the reads that follow (the server ends it, the client ahead leaves),
// they are answered from another connection.
#include <poll.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "tests/proxy/http_get.h"
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

constexpr int kKeys = 500;
constexpr int kSlowKey = 1000;      // its read sleeps `nap` seconds: 2
constexpr int kShortNapKey = 1001;  // 0.5

constexpr char kUnsharded[] = "    pipeline_reads: 8\n";
constexpr char kRouted[] = R"(    pipeline_reads: 8
    default_shard: s0
    routers:
      by_id: {type: modulo, hash: postgres, shards: [s0]}
    tables:
      pl_items: {key: id, router: by_id}
)";

// Everything of one request's results, as text: each result's status or SQLSTATE, and rows;
// "TIMEOUT" when they have not all come within 20 s (an answer that went astray).
std::string Collect(PGconn* conn) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    while (PQisBusy(conn)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{.fd = PQsocket(conn), .events = POLLIN, .revents = 0};
      if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) == 0) {
        return out + "TIMEOUT";
      }
      if (PQconsumeInput(conn) == 0) break;  // the error comes as a result
    }
    PGresult* res = PQgetResult(conn);
    if (res == nullptr) break;
    const ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR) {
      const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      absl::StrAppend(&out, "ERROR ", state != nullptr ? state : "?", ";");
    } else {
      absl::StrAppend(&out, PQcmdStatus(res), ":");
      for (const auto& row : PgConn::RowsOf(res)) {
        for (const auto& cell : row) absl::StrAppend(&out, cell, "|");
      }
      absl::StrAppend(&out, ";");
    }
    PQclear(res);
  }
  return out;
}

std::string ReadSql(int key) {
  // (Every literal a comparison value, as prepare_reads wants; 22012 where v is 0.)
  return absl::StrCat("SELECT id, hundred / v, at FROM pl_items WHERE id = ", key);
}

// The same read in the extended protocol, the key a parameter.
constexpr char kReadParamSql[] = "SELECT id, hundred / v, at FROM pl_items WHERE id = $1";

// How a client of EachClientGetsItsOwnAnswer asks.
enum class Ask { kQuery, kUnnamed, kNamed };

// Sends the read of `key` as `how` asks (kNamed: the statement "pl_read" the client prepared).
bool SendRead(PGconn* conn, int key, Ask how) {
  const std::string value = absl::StrCat(key);
  const char* values[] = {value.c_str()};
  switch (how) {
    case Ask::kQuery: return PQsendQuery(conn, ReadSql(key).c_str()) == 1;
    case Ask::kUnnamed:
      return PQsendQueryParams(conn, kReadParamSql, 1, nullptr, values, nullptr, nullptr, 0) == 1;
    case Ask::kNamed:
      return PQsendQueryPrepared(conn, "pl_read", 1, values, nullptr, nullptr, 0) == 1;
  }
  return false;
}

class PipelinedReadsTest : public ProxyPairSuite<PipelinedReadsTest> {
 public:
  static constexpr const char* kUnshardedYaml = kUnsharded;
  static constexpr const char* kRoutedYaml = kRouted;
  static std::string Tables() {
    return absl::StrCat(R"(
      DROP TABLE IF EXISTS pl_items, pl_log;
      CREATE TABLE pl_items (id int PRIMARY KEY, v int, at date, nap float8 NOT NULL,
                             hundred int DEFAULT 100);
      INSERT INTO pl_items
        SELECT i, CASE WHEN i % 5 = 0 THEN 0 ELSE i * 7 END, date '2024-01-01' + i, 0
        FROM generate_series(1, )",
                        kKeys, R"() i;
      INSERT INTO pl_items VALUES ()",
                        kSlowKey, R"(, 1, date '2024-01-01', 2), ()", kShortNapKey,
                        R"(, 1, date '2024-01-01', 0.5);
      CREATE TABLE pl_log (n int);)");
  }

 protected:
  // PostgreSQL's own answers to every key's read, with DateStyle ISO and SQL, DMY.
  static std::map<std::pair<bool, int>, std::string> Expected() {
    std::map<std::pair<bool, int>, std::string> want;
    for (bool sql_style : {false, true}) {
      auto direct = PgConn::Connect(env().DirectConnString());
      EXPECT_OK(direct.status());
      if (!direct.ok()) return want;
      if (sql_style) EXPECT_OK(direct->Exec("SET datestyle = 'SQL, DMY'"));
      for (int key = 1; key <= kKeys; ++key) {
        EXPECT_EQ(PQsendQuery(direct->get(), ReadSql(key).c_str()), 1);
        want[{sql_style, key}] = Collect(direct->get());
      }
    }
    return want;
  }

  static double Metric(int port, const std::string& outcome) {
    const std::string metrics = "\n" + HttpGet(port, "/metrics").second;
    return Sample(metrics, absl::StrCat(R"(shardgate_pipelined_reads_total{database="app",)",
                                        R"(user="app",outcome=")", outcome, R"("})"));
  }

  // Twelve clients, all at once, 120 rounds: ten read (the last of them with another DateStyle,
  // which no server connection has while the others read), one writes, one runs a transaction;
  // every answer is checked. The readers ask as a Query, as the extended protocol's unnamed
  // statement (PQexecParams) and by a statement they prepared (PQexecPrepared), in turn. Then
  // 40 rounds of nine readers (not the DateStyle one) asking one way, for each way: the first
  // read gets the connection and the next ones follow it (the metric shows it). (A read waits
  // in the pool when a client waits there before it, as the write and the other DateStyle do
  // in the first rounds: none may pass a client waiting there.)
  static void EachClientGetsItsOwnAnswer(const std::string& conninfo, int http_port) {
    const auto want = Expected();
    ASSERT_EQ(want.size(), 2u * kKeys);
    ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
    ASSERT_OK(direct.Exec("TRUNCATE pl_log"));
    constexpr int kClients = 12, kMixedRounds = 120, kRounds = 40;
    std::vector<PgConn> clients;
    for (int i = 0; i < kClients; ++i) {
      ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(conninfo));
      if (i == 9) ASSERT_OK(c.Exec("SET datestyle = 'SQL, DMY'"));
      PgResult prepared(PQprepare(c.get(), "pl_read", kReadParamSql, 0, nullptr));
      ASSERT_OK(ResultStatus(prepared.get(), c.get()));
      clients.push_back(std::move(c));
    }
    // `how`: how the nine readers ask; none: all twelve clients, mixed.
    auto run = [&](int rounds, std::optional<Ask> how) {
      for (int round = 0; round < rounds; ++round) {
        std::vector<std::string> sent(kClients);
        for (int i = 0; i < (how ? 9 : kClients); ++i) {
          const int key = (round * kClients + i) % kKeys + 1;
          if (i == 10) {
            sent[i] = absl::StrCat("INSERT INTO pl_log VALUES (", round, ")");
          } else if (i == 11) {
            sent[i] = absl::StrCat("BEGIN; SELECT v FROM pl_items WHERE id = ", key,
                                   " FOR UPDATE; COMMIT");
          } else {
            const Ask ask = how ? *how : static_cast<Ask>((round + i) % 3);
            ASSERT_TRUE(SendRead(clients[i].get(), key, ask)) << PQerrorMessage(clients[i].get());
            sent[i] = absl::StrCat("read ", key, " asked as ", static_cast<int>(ask));
            continue;
          }
          ASSERT_EQ(PQsendQuery(clients[i].get(), sent[i].c_str()), 1)
              << PQerrorMessage(clients[i].get());
        }
        for (int i = 0; i < kClients; ++i) {
          if (sent[i].empty()) continue;
          const int key = (round * kClients + i) % kKeys + 1;
          const std::string got = Collect(clients[i].get());
          if (i == 10) {
            ASSERT_EQ(got, "INSERT 0 1:;") << "round " << round;
          } else if (i == 11) {
            ASSERT_EQ(got,
                      absl::StrCat("BEGIN:;SELECT 1:", key % 5 == 0 ? 0 : key * 7, "|;COMMIT:;"))
                << "round " << round;
          } else {
            ASSERT_EQ(got, want.at({i == 9, key}))
                << "client " << i << ", round " << round << ": " << sent[i];
          }
        }
      }
    };
    ASSERT_NO_FATAL_FAILURE(run(kMixedRounds, std::nullopt));
    ASSERT_OK_AND_ASSIGN(std::string logged, direct.Scalar("SELECT count(*) FROM pl_log"));
    EXPECT_EQ(logged, absl::StrCat(kMixedRounds));
    for (Ask how : {Ask::kQuery, Ask::kUnnamed, Ask::kNamed}) {
      SCOPED_TRACE(absl::StrCat("asked as ", static_cast<int>(how)));
      const double before = std::max(0.0, Metric(http_port, "sent"));
      ASSERT_NO_FATAL_FAILURE(run(kRounds, how));
      // The reads did follow one another (else this tested nothing of pipelining).
      EXPECT_GT(Metric(http_port, "sent") - before, kRounds)
          << "reads sent behind others\n"
          << HttpGet(http_port, "/metrics").second;
    }
    EXPECT_LE(Metric(http_port, "rerun"), 0) << "no connection was lost";
  }

  // A read that sleeps holds the one server connection; six reads follow it; then `cut` ends
  // that connection. The slow read fails; each of the six is answered (from a new connection).
  // Six clients of `conninfo`, for the reads that queue behind a slow one.
  static void ConnectReaders(const std::string& conninfo, std::vector<PgConn>& readers) {
    for (int i = 0; i < 6; ++i) {
      ASSERT_OK_AND_ASSIGN(PgConn c, PgConn::Connect(conninfo));
      readers.push_back(std::move(c));
    }
  }

  // Until the slow read (its statement sleeps for `nap`) runs on the server (2 s at most).
  static void WaitForSlowRead() {
    ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
    for (int i = 0; i < 200; ++i) {
      ASSERT_OK_AND_ASSIGN(std::string n,
                           direct.Scalar("SELECT count(*) FROM pg_stat_activity WHERE query "
                                         "LIKE '%pg_sleep(nap)%' AND state = 'active' AND pid "
                                         "<> pg_backend_pid()"));
      if (n == "1") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Once the slow read (its statement sleeps for `nap`) runs on the server, each reader sends
  // its read (key i + 1), and all of them are sent behind it: the metric, from `sent_before`,
  // counts them as they are sent.
  static void QueueBehindSlowRead(std::vector<PgConn>& readers, int http_port, double sent_before) {
    ASSERT_NO_FATAL_FAILURE(WaitForSlowRead());
    for (size_t i = 0; i < readers.size(); ++i) {
      ASSERT_EQ(PQsendQuery(readers[i].get(), ReadSql(static_cast<int>(i) + 1).c_str()), 1);
    }
    const double want = static_cast<double>(readers.size());
    for (int i = 0; i < 200 && Metric(http_port, "sent") - sent_before < want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(Metric(http_port, "sent") - sent_before, want);
  }

  // `lost`: the connection is lost before the slow read's answer, so all six are sent again;
  // else (the client left: the proxy cancels its read, whose answer may still come in before
  // the connection is given up) they are answered on it or sent again.
  static void ReadsBehindALostConnection(ShardgateProcess& proxy, int http_port,
                                         const std::function<void(PgConn& slow)>& cut, bool lost) {
    const std::string conninfo = proxy.ConnString("app", kScramUser, kScramPassword);
    const auto want = Expected();
    ASSERT_OK_AND_ASSIGN(PgConn slow, PgConn::Connect(conninfo));
    std::vector<PgConn> readers;
    ASSERT_NO_FATAL_FAILURE(ConnectReaders(conninfo, readers));
    const double sent_before = std::max(0.0, Metric(http_port, "sent"));
    const double rerun_before = std::max(0.0, Metric(http_port, "rerun"));
    ASSERT_EQ(PQsendQuery(slow.get(), absl::StrCat("SELECT id, pg_sleep(nap) FROM pl_items "
                                                   "WHERE id = ",
                                                   kSlowKey)
                                          .c_str()),
              1);
    ASSERT_NO_FATAL_FAILURE(QueueBehindSlowRead(readers, http_port, sent_before));
    // Operators see them waiting for a server (the slow read still runs: 2 s).
    {
      ASSERT_OK_AND_ASSIGN(PgConn admin,
                           PgConn::Connect(proxy.ConnString("shardgate", "admin", "admin")));
      PgResult pools(PQexec(admin.get(), "SHOW POOLS"));
      ASSERT_EQ(PQresultStatus(pools.get()), PGRES_TUPLES_OK);
      const int column = PQfnumber(pools.get(), "cl_waiting");
      ASSERT_GE(column, 0);
      ASSERT_EQ(PQntuples(pools.get()), 1);
      EXPECT_EQ(Cell(pools.get(), 0, column), "6");
    }
    cut(slow);
    if (lost) {
      const std::string got = Collect(slow.get());
      EXPECT_TRUE(absl::StartsWith(got, "ERROR ")) << got;
    }
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(Collect(readers[i].get()), want.at({false, i + 1})) << "reader " << i;
    }
    const double reruns = Metric(http_port, "rerun") - rerun_before;
    if (lost) {
      EXPECT_EQ(reruns, 6);
    } else {
      EXPECT_TRUE(reruns == 0 || reruns == 6) << reruns;  // all or none: it is one connection
    }
    // And the pool goes on.
    ASSERT_OK_AND_ASSIGN(PgConn after, PgConn::Connect(conninfo));
    ASSERT_OK_AND_ASSIGN(auto rows, after.Rows(ReadSql(7)));
    EXPECT_EQ(rows.size(), 1u);
  }

  static void TerminateSlowRead() {
    ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
    ASSERT_OK_AND_ASSIGN(std::string n,
                         direct.Scalar("SELECT count(pg_terminate_backend(pid)) FROM "
                                       "pg_stat_activity WHERE query LIKE '%pg_sleep(nap)%' "
                                       "AND state = 'active' AND pid <> pg_backend_pid()"));
    EXPECT_EQ(n, "1");
  }
};

TEST_F(PipelinedReadsTest, EachClientGetsItsOwnAnswerUnsharded) {
  EachClientGetsItsOwnAnswer(env().ConnString(), http_port_);
  // Operators see the setting.
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(env().proxy->ConnString("shardgate", "admin", "admin")));
  ASSERT_OK_AND_ASSIGN(auto config, admin.Rows("SHOW CONFIG"));
  EXPECT_THAT(config, ::testing::Contains(
                          ::testing::ElementsAre("databases.app.pipeline_reads", "8", "0", "yes")));
}

TEST_F(PipelinedReadsTest, EachClientGetsItsOwnAnswerRouted) {
  ASSERT_NE(routed_, nullptr);
  EachClientGetsItsOwnAnswer(RoutedConnString(), routed_http_port_);
}

TEST_F(PipelinedReadsTest, ReadsBehindATerminatedServerAreAnsweredElsewhere) {
  ReadsBehindALostConnection(
      *env().proxy, http_port_, [](PgConn&) { TerminateSlowRead(); }, true);
}

// A Query message, raw.
std::string QueryMessage(std::string_view sql) {
  std::string out = "Q";
  PutInt32(out, static_cast<uint32_t>(4 + sql.size() + 1));
  out.append(sql);
  out.push_back('\0');
  return out;
}

// The holder of a connection that reads queue behind asks again before its answer is in (two
// more Queries in one send, past libpq): it must not send them on that connection behind the
// others' reads, but hand it on once its answer is in and then ask anew. Every client gets its
// own answers, in order, and no read is sent twice.
TEST_F(PipelinedReadsTest, AHolderThatAsksAgainHandsTheConnectionOnFirst) {
  const auto want = Expected();
  ASSERT_OK_AND_ASSIGN(PgConn holder, PgConn::Connect(env().ConnString()));
  std::vector<PgConn> readers;
  ASSERT_NO_FATAL_FAILURE(ConnectReaders(env().ConnString(), readers));
  const double sent_before = std::max(0.0, Metric(http_port_, "sent"));
  const double rerun_before = std::max(0.0, Metric(http_port_, "rerun"));
  // The readers' statement is prepared on the one server connection (reads follow only where
  // their statement is), whichever tests ran before.
  ASSERT_OK(holder.Exec(ReadSql(1)));
  auto sock = RawSocket::Borrow(PQsocket(holder.get()));
  ASSERT_TRUE(sock->Send(QueryMessage(
      absl::StrCat("SELECT id, pg_sleep(nap) FROM pl_items WHERE id = ", kShortNapKey))));
  ASSERT_NO_FATAL_FAILURE(QueueBehindSlowRead(readers, http_port_, sent_before));
  // Asks again while its first answer is still to come: a read (which may queue in turn) and a
  // statement that is not one.
  ASSERT_TRUE(sock->Send(QueryMessage(ReadSql(7)) + QueryMessage("SELECT 'last'")));
  // Its answers: the first column of each DataRow, one list per ReadyForQuery.
  std::vector<std::string> got;
  std::string rows;
  while (got.size() < 3) {
    auto msg = sock->ReadMessage(std::chrono::seconds(20));
    ASSERT_TRUE(msg.has_value()) << "after " << got.size() << " answers: " << rows;
    if (msg->first == 'D') {
      const std::string& body = msg->second;
      const uint32_t len = GetInt32(body, 2);
      absl::StrAppend(&rows, body.substr(6, len), "|");
    } else if (msg->first == 'E') {
      absl::StrAppend(&rows, "ERROR ", ErrorField(msg->second, 'C'), "|");
    } else if (msg->first == 'Z') {
      got.push_back(std::exchange(rows, ""));
    }
  }
  sock->Release();
  EXPECT_THAT(got, ::testing::ElementsAre(absl::StrCat(kShortNapKey, "|"), "7|", "last|"));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(Collect(readers[i].get()), want.at({false, i + 1})) << "reader " << i;
  }
  EXPECT_EQ(Metric(http_port_, "rerun") - rerun_before, 0) << "no connection was lost";
}

// An extended-protocol read sent behind another (its batch taken whole by the proxy) answers
// every message of the batch as PostgreSQL does: ParseComplete, BindComplete, RowDescription,
// the row, CommandComplete, ReadyForQuery (libpq does not notice a missing ParseComplete, so
// the messages are read raw here). Unsharded (the batch from its Parse) and routed (from its
// Bind: the proxy answers the Parse itself), and a Bind of a prepared statement.
TEST_F(PipelinedReadsTest, ExtendedReadsBehindAnotherGetEveryMessage) {
  ASSERT_NE(routed_, nullptr);
  struct Case {
    std::string conninfo;
    int http_port;
    bool named;
  };
  for (const Case& c : {Case{env().ConnString(), http_port_, false},
                        Case{env().ConnString(), http_port_, true},
                        Case{RoutedConnString(), routed_http_port_, false},
                        Case{RoutedConnString(), routed_http_port_, true}}) {
    SCOPED_TRACE(absl::StrCat(c.conninfo, c.named ? " (named)" : ""));
    ASSERT_OK_AND_ASSIGN(PgConn holder, PgConn::Connect(c.conninfo));
    std::vector<PgConn> readers;
    ASSERT_NO_FATAL_FAILURE(ConnectReaders(c.conninfo, readers));
    readers.resize(3);
    // The statement is prepared on the one server connection (reads follow only where theirs
    // is), and by the readers (PQprepare: Parse, Sync).
    {
      const char* one = "1";
      PgResult res(
          PQexecParams(holder.get(), kReadParamSql, 1, nullptr, &one, nullptr, nullptr, 0));
      ASSERT_OK(ResultStatus(res.get(), holder.get()));
    }
    for (PgConn& r : readers) {
      PgResult res(PQprepare(r.get(), "pl_read", kReadParamSql, 0, nullptr));
      ASSERT_OK(ResultStatus(res.get(), r.get()));
    }
    const double sent_before = std::max(0.0, Metric(c.http_port, "sent"));
    ASSERT_EQ(PQsendQuery(holder.get(), absl::StrCat("SELECT id, pg_sleep(nap) FROM pl_items "
                                                     "WHERE id = ",
                                                     kShortNapKey)
                                            .c_str()),
              1);
    ASSERT_NO_FATAL_FAILURE(WaitForSlowRead());
    std::vector<std::unique_ptr<RawSocket>> socks;
    for (size_t i = 0; i < readers.size(); ++i) {
      std::string batch;
      if (!c.named) protocol::AppendParse(batch, "", kReadParamSql);
      const std::string key = absl::StrCat(i + 1);
      protocol::Bind bind;
      bind.statement = c.named ? "pl_read" : "";
      bind.params.push_back(key);
      protocol::AppendBind(batch, bind);
      protocol::AppendDescribe(batch, 'P', "");
      protocol::AppendExecute(batch, "");
      protocol::AppendSync(batch);
      socks.push_back(RawSocket::Borrow(PQsocket(readers[i].get())));
      ASSERT_TRUE(socks.back()->Send(batch));
    }
    for (int i = 0; i < 200 && Metric(c.http_port, "sent") - sent_before < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(Metric(c.http_port, "sent") - sent_before, 3) << "sent behind the slow read";
    EXPECT_EQ(Collect(holder.get()), absl::StrCat("SELECT 1:", kShortNapKey, "||;"));
    for (size_t i = 0; i < socks.size(); ++i) {
      std::string types, first_cell;
      for (;;) {
        auto msg = socks[i]->ReadMessage(std::chrono::seconds(20));
        ASSERT_TRUE(msg.has_value()) << "reader " << i << " after " << types;
        types.push_back(msg->first);
        if (msg->first == 'D') first_cell = msg->second.substr(6, GetInt32(msg->second, 2));
        if (msg->first == 'Z') break;
      }
      socks[i]->Release();
      EXPECT_EQ(types, c.named ? "2TDCZ" : "12TDCZ") << "reader " << i;
      EXPECT_EQ(first_cell, absl::StrCat(i + 1)) << "reader " << i;
    }
  }
}

TEST_F(PipelinedReadsTest, ReadsBehindAClientThatLeftAreAnsweredElsewhere) {
  ASSERT_NE(routed_, nullptr);
  ReadsBehindALostConnection(
      *routed_, routed_http_port_, [](PgConn& slow) { slow.Close(); }, false);
}

}  // namespace
}  // namespace shardgate::testing
