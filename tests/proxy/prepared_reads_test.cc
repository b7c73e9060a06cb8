// prepare_reads: simple-protocol reads whose literals are compared with columns run as
// statements prepared on the server. The client must not be able to tell: every statement of a
// corpus (literal types PostgreSQL infers differently, strings typed by their column, errors in
// Parse and in Bind, statements that must not be rewritten) gives through shardgate, unsharded
// and routed, what it gives straight from PostgreSQL, seven times over (the server switches to a
// generic plan after five), as a Query and as the unnamed statement of the extended protocol
// (which the proxy also runs as a prepared statement when it is a read), and the server really
// holds the prepared statements. A server
// connection holds at most max_prepared_statements of them, also after failed pipelines.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/proxy/http_get.h"
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

// Everything a client sees of one statement's answer.
struct Answer {
  std::string sqlstate;  // "" when it succeeded
  std::string message;
  std::string tag;
  std::vector<std::string> names;
  std::vector<Oid> types;
  std::vector<std::vector<std::string>> rows;

  bool operator==(const Answer&) const = default;
  // The same but for an error's message: the routed proxy checks a shard key's type itself
  // (22P02 in its own words).
  bool SameButMessage(const Answer& o) const {
    Answer a = *this;
    a.message = o.message;
    return a == o;
  }
  std::string Describe() const {
    if (!sqlstate.empty()) return absl::StrCat("ERROR ", sqlstate, ": ", message);
    std::string out = absl::StrCat(tag, " [", absl::StrJoin(names, ", "), "] types [",
                                   absl::StrJoin(types, ", "), "]");
    for (const auto& row : rows) absl::StrAppend(&out, " (", absl::StrJoin(row, " | "), ")");
    return out;
  }
};

// `extended`: as the unnamed statement of the extended protocol (PQexecParams: Parse, Bind,
// Describe, Execute, Sync), where the proxy runs a read as its sg_ statement.
Answer Ask(const PgConn& conn, const std::string& sql, bool extended = false) {
  PgResult res(extended ? PQexecParams(conn.get(), sql.c_str(), 0, nullptr, nullptr, nullptr,
                                       nullptr, 0)
                        : PQexec(conn.get(), sql.c_str()));
  Answer a;
  const absl::Status st = ResultStatus(res.get(), conn.get());
  if (!st.ok()) {
    a.sqlstate = std::string(SqlState(st));
    if (const char* m = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY)) a.message = m;
    return a;
  }
  a.tag = PQcmdStatus(res.get());
  for (int c = 0; c < PQnfields(res.get()); ++c) {
    a.names.emplace_back(PQfname(res.get(), c));
    a.types.push_back(PQftype(res.get(), c));
  }
  a.rows = PgConn::RowsOf(res.get());
  return a;
}

// The same one server behind an unsharded shardgate (this suite's) and a routed one (a modulo
// router over the one shard, as the benchmark runs it), both with prepare_reads; one worker and
// one server connection each, so what one statement prepared the next finds.
constexpr char kPrepare[] = "    prepare_reads: true\n";
constexpr char kRouted[] = R"(    prepare_reads: true
    default_shard: s0
    routers:
      by_id: {type: modulo, hash: postgres, shards: [s0]}
    tables:
      pr_items: {key: id, router: by_id}
)";

class PreparedReadsTest : public ProxyPairSuite<PreparedReadsTest> {
 public:
  static constexpr const char* kUnshardedYaml = kPrepare;
  static constexpr const char* kRoutedYaml = kRouted;
  static std::string Tables() {
    return R"(
      DROP TABLE IF EXISTS pr_items, pr_altered;
      DROP TYPE IF EXISTS pr_color;
      CREATE TYPE pr_color AS ENUM ('red', 'green');
      CREATE TABLE pr_items (id int PRIMARY KEY, big bigint, name text, code char(4),
                             price numeric(10, 2), color pr_color, at date, uid uuid,
                             score float8);
      INSERT INTO pr_items
        SELECT i, i * 1000000000::bigint, 'n' || i, 'c' || i, i * 1.5,
               CASE WHEN i % 2 = 0 THEN 'red'::pr_color ELSE 'green' END,
               date '2024-02-27' + i, md5(i::text)::uuid, i / 4.0
        FROM generate_series(1, 20) i;
      INSERT INTO pr_items (id, name) VALUES (21, 'it''s'), (22, E'tab\there'), (23, 'dollar');
      CREATE TABLE pr_altered (id int PRIMARY KEY, name text);
      INSERT INTO pr_altered VALUES (1, 'one');)";
  }

 protected:
  static void UnnamedStatementAfterAnAlter(const std::string& conninfo);
};

// Statements the proxy runs prepared and statements it must send as written: both kinds must
// answer as PostgreSQL does.
const std::vector<std::string>& Corpus() {
  static const std::vector<std::string> corpus = {
      "SELECT name FROM pr_items WHERE id = 3",
      "SELECT id, name FROM pr_items WHERE id IN (1, 2, 3) ORDER BY id",
      "SELECT id FROM pr_items WHERE (id = 4 OR id = 5) ORDER BY id",
      "SELECT id FROM pr_items WHERE id = ANY(ARRAY[6, 7]) ORDER BY id",
      "SELECT count(*), sum(price), avg(score) FROM pr_items WHERE name = 'n8'",
      "SELECT id FROM pr_items WHERE big = 3000000000",            // int8 literal
      "SELECT id FROM pr_items WHERE big = 99999999999999999999",  // numeric literal
      "SELECT id FROM pr_items WHERE id = 3000000000",             // int4 column, int8 literal
      "SELECT id, price FROM pr_items WHERE price = 4.50",
      "SELECT id FROM pr_items WHERE price = 45e-1",
      "SELECT id FROM pr_items WHERE score = 0.75",
      "SELECT id, code FROM pr_items WHERE code = 'c2'",  // char(4): padded comparison
      "SELECT id FROM pr_items WHERE color = 'red' AND id = 2",
      "SELECT id FROM pr_items WHERE color = 'blue'",  // 22P02 from the enum, at Bind
      "SELECT id FROM pr_items WHERE at = '2024-03-01'",
      "SELECT id FROM pr_items WHERE uid = 'c4ca4238-a0b9-3382-0dcc-509a6f75849b'",
      "SELECT id FROM pr_items WHERE id = '7'",  // a string typed by its column
      "SELECT id FROM pr_items WHERE id = 'x'",  // 22P02
      "SELECT id FROM pr_items WHERE name = 'it''s'",
      "SELECT id FROM pr_items WHERE name = E'tab\\there'",
      "SELECT id FROM pr_items WHERE name = $$dollar$$",
      "SELECT id FROM pr_items WHERE name = 'n1' COLLATE \"C\"",
      "SELECT id FROM pr_items WHERE id = 5::bigint",
      "SELECT id FROM pr_items WHERE name = '9'::text",
      "SELECT a.id, b.name FROM pr_items a JOIN pr_items b ON b.id = a.id WHERE a.id = 4",
      "SELECT id FROM pr_items WHERE id = (SELECT 2)",
      "SELECT id, name FROM pr_items WHERE id = 2;",
      "/* a comment */ SELECT name FROM pr_items WHERE id = 2 -- and another",
      "SELECT nosuch FROM pr_items WHERE id = 1",                   // 42703, from Parse
      "SELECT id FROM pr_nosuch WHERE id = 1",                      // 42P01, from Parse
      "SELECT id FROM pr_items WHERE id = 1 AND 1 / (id - 1) = 0",  // 22012, at Execute
      // Sent as written: a literal that is not a column's comparison value, SELECT *, negation,
      // several statements, no literal at all.
      "SELECT 1",
      "SELECT 'x' AS v, id FROM pr_items WHERE id = 1",
      "SELECT * FROM pr_items WHERE id = 1",
      "SELECT id FROM pr_items WHERE id = 1 LIMIT 1",
      "SELECT id FROM pr_items WHERE id = -1",
      "SELECT id FROM pr_items WHERE id > 18 ORDER BY 1",
      "SELECT id FROM pr_items WHERE id = 1; SELECT 2",
      "SELECT count(*) FROM pr_items",
  };
  return corpus;
}

TEST_F(PreparedReadsTest, EveryStatementAnswersAsPostgresDoes) {
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn plain, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn routed, PgConn::Connect(RoutedConnString()));
  const std::string metrics_before = "\n" + HttpGet(http_port_, "/metrics").second;
  const double prepared_before = std::max(
      0.0, Sample(metrics_before, R"(shardgate_prepared_reads_total{database="app",user="app"})"));
  for (bool extended : {false, true}) {
    for (const std::string& sql : Corpus()) {
      const std::string how = extended ? "extended" : "simple";
      const Answer want = Ask(direct, sql, extended);
      for (int round = 0; round < 7; ++round) {
        const Answer got = Ask(plain, sql, extended);
        EXPECT_EQ(got, want) << sql << " (unsharded, " << how << ", round " << round
                             << ")\n  got:  " << got.Describe() << "\n  want: " << want.Describe();
        const Answer got_routed = Ask(routed, sql, extended);
        EXPECT_TRUE(got_routed.SameButMessage(want))
            << sql << " (routed, " << how << ", round " << round
            << ")\n  got:  " << got_routed.Describe() << "\n  want: " << want.Describe();
        if (got != want || !got_routed.SameButMessage(want)) break;
      }
    }
  }
  // The reads above ran prepared: their statements are on the server (the one connection of
  // each proxy), named as shardgate names prepared statements, with the literals' types.
  for (const PgConn* conn : {&plain, &routed}) {
    auto types = conn->Rows(
        "SELECT DISTINCT parameter_types::text FROM pg_prepared_statements "
        "WHERE name LIKE 'sg\\_%' ORDER BY 1");
    ASSERT_OK(types);
    std::vector<std::string> got;
    for (const auto& row : *types) got.push_back(row[0]);
    EXPECT_THAT(got, ::testing::IsSupersetOf(
                         {"{integer}", "{bigint}", "{numeric}", "{text}", "{pr_color,integer}"}))
        << absl::StrJoin(got, " ");
  }
  // Operators see it: SHOW CONFIG and the metric (the unsharded proxy's reads only).
  ASSERT_OK_AND_ASSIGN(PgConn admin,
                       PgConn::Connect(env().proxy->ConnString("shardgate", "admin", "admin")));
  ASSERT_OK_AND_ASSIGN(auto config, admin.Rows("SHOW CONFIG"));
  EXPECT_THAT(config, ::testing::Contains(::testing::ElementsAre("databases.app.prepare_reads",
                                                                 "on", "on", "yes")));
  EXPECT_THAT(config, ::testing::Contains(::testing::ElementsAre(
                          "databases.app.max_prepared_statements", "200", "200", "yes")));
  const std::string metrics = "\n" + HttpGet(http_port_, "/metrics").second;
  const double prepared =
      Sample(metrics, R"(shardgate_prepared_reads_total{database="app",user="app"})") -
      prepared_before;
  // 25-odd corpus statements qualify as simple reads, 7 rounds each; as unnamed statements
  // every single-statement read but SELECT * does, literals and all (37).
  EXPECT_GE(prepared, 7 * (25 + 34)) << metrics;
  EXPECT_LT(prepared, 7 * 2 * static_cast<double>(Corpus().size())) << "some were sent as written";
  EXPECT_TRUE(env().ProxyAlive()) << env().ProxyLogTail();
}

// The routed proxy holds BEGIN until the first statement that needs a server: the prepared
// read then goes after it, inside the transaction.
TEST_F(PreparedReadsTest, ErrorsInATransactionAreThoseOfPostgres) {
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn plain, env().Connect());
  ASSERT_OK_AND_ASSIGN(PgConn routed, PgConn::Connect(RoutedConnString()));
  const std::vector<std::string> script = {
      "BEGIN",
      "SELECT name FROM pr_items WHERE id = 3",
      "SELECT id FROM pr_items WHERE id = 'x'",  // fails the transaction
      "SELECT name FROM pr_items WHERE id = 3",  // 25P02
      "ROLLBACK",
      "SELECT name FROM pr_items WHERE id = 3",
  };
  for (const std::string& sql : script) {
    const Answer want = Ask(direct, sql);
    const Answer got = Ask(plain, sql);
    EXPECT_EQ(got, want) << sql << "\n  got:  " << got.Describe()
                         << "\n  want: " << want.Describe();
    EXPECT_EQ(PQtransactionStatus(plain.get()), PQtransactionStatus(direct.get())) << sql;
    const Answer got_routed = Ask(routed, sql);
    EXPECT_TRUE(got_routed.SameButMessage(want))
        << sql << " (routed)\n  got:  " << got_routed.Describe() << "\n  want: " << want.Describe();
    EXPECT_EQ(PQtransactionStatus(routed.get()), PQtransactionStatus(direct.get())) << sql;
  }
}

// The cost of a prepared statement: an ALTER that changes its result type makes its next run
// fail (0A000 "cached plan must not change result type"). Outside a transaction the proxy
// prepares it anew and runs it again, so the client sees the new type; inside one the error is
// PostgreSQL's to report (the transaction has failed), and the connection is closed so that the
// statement is prepared anew afterwards.
TEST_F(PreparedReadsTest, AnAlteredResultTypeIsPreparedAnew) {
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn plain, env().Connect());
  const std::string read = "SELECT name FROM pr_altered WHERE id = 1";
  auto first = plain.Scalar(read);
  ASSERT_OK(first);
  EXPECT_EQ(*first, "one");
  ASSERT_OK(direct.Exec("ALTER TABLE pr_altered ALTER COLUMN name TYPE varchar(10)"));
  const Answer again = Ask(plain, read);
  EXPECT_EQ(again.sqlstate, "") << again.Describe();
  EXPECT_EQ(again.rows, (std::vector<std::vector<std::string>>{{"one"}}));
  EXPECT_EQ(again.types, std::vector<Oid>{1043}) << "varchar now";
  EXPECT_EQ(Ask(plain, read), again) << "and the statement prepared anew stays";

  ASSERT_OK(direct.Exec("ALTER TABLE pr_altered ALTER COLUMN name TYPE text"));
  ASSERT_OK(plain.Exec("BEGIN"));
  const Answer failed = Ask(plain, read);
  EXPECT_EQ(failed.sqlstate, "0A000") << failed.Describe();
  EXPECT_THAT(failed.message, ::testing::HasSubstr("cached plan must not change result type"));
  EXPECT_EQ(PQtransactionStatus(plain.get()), PQTRANS_INERROR);
  ASSERT_OK(plain.Exec("ROLLBACK"));
  const Answer after = Ask(plain, read);
  EXPECT_EQ(after.sqlstate, "") << after.Describe();
  EXPECT_EQ(after.types, std::vector<Oid>{25}) << "text again";
}

// The unnamed statement (PQexecParams: Parse, Bind, Execute each time) that is a read runs
// prepared on the server under its sg_ name (unsharded and routed alike), as a client's named
// statement does. An ALTER that changes its result type makes the server refuse the statement
// prepared before it (0A000
// "cached plan must not change result type") at every Bind. Outside a transaction the proxy
// prepares it anew and runs the client's batch again, so the client sees what PostgreSQL,
// which parses the unnamed statement anew every time, gives; inside one the transaction has
// failed and the client gets the error, and the connection, closed when the transaction ends,
// takes the stale statement with it (before, every later run failed on it).
TEST_F(PreparedReadsTest, AnUnnamedStatementAfterAnAlter) {
  for (const std::string& conninfo : {env().ConnString(), RoutedConnString()}) {
    SCOPED_TRACE(conninfo);
    ASSERT_NO_FATAL_FAILURE(UnnamedStatementAfterAnAlter(conninfo));
  }
}

void PreparedReadsTest::UnnamedStatementAfterAnAlter(const std::string& conninfo) {
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK(
      direct.Exec("DROP TABLE IF EXISTS pr_unnamed; "
                  "CREATE TABLE pr_unnamed (id int PRIMARY KEY, name text); "
                  "INSERT INTO pr_unnamed VALUES (1, 'one')"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, PgConn::Connect(conninfo));
  PGconn* c = conn.get();
  const char* one = "1";
  auto run = [&]() -> std::pair<std::string, Oid> {
    PgResult res(PQexecParams(c, "SELECT name FROM pr_unnamed WHERE id = $1", 1, nullptr, &one,
                              nullptr, nullptr, 0));
    const absl::Status st = ResultStatus(res.get(), c);
    if (!st.ok()) return {std::string(SqlState(st)), 0};
    return {Cell(res.get(), 0, 0), PQftype(res.get(), 0)};
  };
  const auto text_one = std::make_pair(std::string("one"), Oid{25});
  const auto varchar_one = std::make_pair(std::string("one"), Oid{1043});
  const auto refused = std::make_pair(std::string("0A000"), Oid{0});
  EXPECT_EQ(run(), text_one);
  EXPECT_EQ(run(), text_one);
  ASSERT_OK(direct.Exec("ALTER TABLE pr_unnamed ALTER COLUMN name TYPE varchar(10)"));
  EXPECT_EQ(run(), varchar_one);
  EXPECT_EQ(run(), varchar_one);
  ASSERT_OK(direct.Exec("ALTER TABLE pr_unnamed ALTER COLUMN name TYPE text"));
  ASSERT_OK(conn.Exec("BEGIN"));
  EXPECT_EQ(run(), refused);
  EXPECT_EQ(PQtransactionStatus(c), PQTRANS_INERROR);
  ASSERT_OK(conn.Exec("ROLLBACK"));
  EXPECT_EQ(run(), text_one);
  ASSERT_OK(conn.Exec("BEGIN"));
  EXPECT_EQ(run(), text_one);
  ASSERT_OK(conn.Exec("COMMIT"));

  // Parameters in binary: not run again (the statement prepared anew could type them
  // otherwise): the error, once, then the statement is prepared anew.
  const Oid int4 = 23;
  const unsigned char be_one[4] = {0, 0, 0, 1};
  const char* bin = reinterpret_cast<const char*>(be_one);
  const int len = 4, binary = 1;
  auto run_binary = [&]() -> std::pair<std::string, Oid> {
    PgResult res(PQexecParams(c, "SELECT name FROM pr_unnamed WHERE id = $1", 1, &int4, &bin, &len,
                              &binary, 0));
    const absl::Status st = ResultStatus(res.get(), c);
    if (!st.ok()) return {std::string(SqlState(st)), 0};
    return {Cell(res.get(), 0, 0), PQftype(res.get(), 0)};
  };
  EXPECT_EQ(run_binary(), text_one);
  ASSERT_OK(direct.Exec("ALTER TABLE pr_unnamed ALTER COLUMN name TYPE varchar(10)"));
  EXPECT_EQ(run_binary(), refused);
  EXPECT_EQ(run_binary(), varchar_one);
}

// A statement deallocated behind the proxy's back (a client's DEALLOCATE of an sg_ name): a read
// outside a transaction prepares it anew unseen; inside one the client gets PostgreSQL's 26000
// and the connection is closed at the transaction's end; a client's own statement alike (its
// batch run again outside a transaction; 26000 once inside one, then it works again). Without
// this, the proxy would bind the missing statement forever.
TEST_F(PreparedReadsTest, AStatementDeallocatedBehindTheProxysBack) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  // The server name of the statement whose text ends so (LIMIT: sent as written).
  auto server_name = [&](const std::string& tail) {
    return Text(conn.Scalar(absl::StrCat(
        "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%", tail, "' LIMIT 1")));
  };
  EXPECT_EQ(Text(conn.Scalar("SELECT name FROM pr_items WHERE id = 3")), "n3");
  const std::string read = server_name("FROM pr_items WHERE id = $1");
  ASSERT_THAT(read, ::testing::StartsWith("sg_"));

  ASSERT_OK(conn.Exec("DEALLOCATE " + read));
  EXPECT_EQ(Text(conn.Scalar("SELECT name FROM pr_items WHERE id = 4")), "n4");

  ASSERT_OK(conn.Exec("DEALLOCATE " + read));
  ASSERT_OK(conn.Exec("BEGIN"));
  EXPECT_THAT(conn.Scalar("SELECT name FROM pr_items WHERE id = 5").status(), HasSqlState("26000"));
  ASSERT_OK(conn.Exec("ROLLBACK"));
  EXPECT_EQ(Text(conn.Scalar("SELECT name FROM pr_items WHERE id = 5")), "n5");

  PgResult mine(PQprepare(c, "mine", "SELECT $1::int * 3", 1, nullptr));
  ASSERT_OK(ResultStatus(mine.get(), c));
  const char* two = "2";
  PgResult first(PQexecPrepared(c, "mine", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(first.get(), c));
  ASSERT_OK(conn.Exec("DEALLOCATE " + server_name("$1::int * 3")));
  PgResult gone(PQexecPrepared(c, "mine", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(gone.get(), c));
  EXPECT_EQ(Cell(gone.get(), 0, 0), "6") << "prepared anew and run again, unseen";
  ASSERT_OK(conn.Exec("DEALLOCATE " + server_name("$1::int * 3")));
  ASSERT_OK(conn.Exec("BEGIN"));
  PgResult in_txn(PQexecPrepared(c, "mine", 1, &two, nullptr, nullptr, 0));
  EXPECT_THAT(ResultStatus(in_txn.get(), c), HasSqlState("26000"));
  ASSERT_OK(conn.Exec("ROLLBACK"));
  PgResult again(PQexecPrepared(c, "mine", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(again.get(), c));
  EXPECT_EQ(Cell(again.get(), 0, 0), "6");
}

// A batch that ran something before the Bind the server refuses is not run again, even when
// that something's answer came back before the Bind was sent (a pipeline with a flush request):
// the error rolled the batch's implicit transaction back, and running the rest again would
// tell the client that a batch whose INSERT is gone succeeded.
TEST_F(PreparedReadsTest, ABatchThatRanSomethingFirstIsNotRunAgain) {
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK(direct.Exec("DROP TABLE IF EXISTS pr_batch; CREATE TABLE pr_batch (id int)"));
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  PgResult mine(PQprepare(c, "five", "SELECT $1::int * 5", 1, nullptr));
  ASSERT_OK(ResultStatus(mine.get(), c));
  const char* two = "2";
  PgResult first(PQexecPrepared(c, "five", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(first.get(), c));
  ASSERT_OK(conn.Exec("DEALLOCATE " + Text(conn.Scalar("SELECT name FROM pg_prepared_statements "
                                                       "WHERE statement LIKE '%$1::int * 5'"))));

  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_EQ(PQsendQueryParams(c, "INSERT INTO pr_batch VALUES (1)", 0, nullptr, nullptr, nullptr,
                              nullptr, 0),
            1);
  ASSERT_EQ(PQsendFlushRequest(c), 1);
  ASSERT_EQ(PQflush(c), 0);
  {
    PgResult inserted(PQgetResult(c));
    EXPECT_EQ(PQresultStatus(inserted.get()), PGRES_COMMAND_OK) << PQerrorMessage(c);
    PgResult end(PQgetResult(c));
    EXPECT_EQ(end.get(), nullptr);
  }
  ASSERT_EQ(PQsendQueryPrepared(c, "five", 1, &two, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(c), 1);
  {
    PgResult refused(PQgetResult(c));
    EXPECT_THAT(ResultStatus(refused.get(), c), HasSqlState("26000"));
    PgResult end(PQgetResult(c));
    EXPECT_EQ(end.get(), nullptr);
    PgResult sync(PQgetResult(c));
    EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  }
  ASSERT_EQ(PQexitPipelineMode(c), 1);
  EXPECT_EQ(Text(direct.Scalar("SELECT count(*) FROM pr_batch")), "0")
      << "the failed batch's INSERT was rolled back, as the client was told";
  PgResult again(PQexecPrepared(c, "five", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(again.get(), c));
  EXPECT_EQ(Cell(again.get(), 0, 0), "10");
}

// databases.<db>.max_prepared_statements: one server connection holds at most that many of the
// proxy's statements (clients' own and prepared reads); the least recently used one is closed
// and prepared again when next needed, which the client never sees, not even after a pipeline
// error made the server skip such a Close.
TEST_F(PreparedReadsTest, ServerConnectionHoldsAtMostTheLimit) {
  ProxyEnvOptions o = Options();
  o.extra_database_yaml = absl::StrCat(kPrepare, "    max_prepared_statements: 3\n");
  o.admin_http_port = 0;
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(o));
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK_AND_ASSIGN(PgConn conn,
                       PgConn::Connect(proxy->ConnString("app", kScramUser, kScramPassword)));
  PGconn* c = conn.get();
  // What the one server connection holds (LIMIT: this statement is sent as written).
  auto held = [&] {
    return Text(conn.Scalar(
        "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sg\\_%' LIMIT 1"));
  };

  // Six statements of the client's own, run in turn three times.
  for (int k = 1; k <= 6; ++k) {
    const std::string name = absl::StrCat("q", k);
    const std::string sql = absl::StrCat("SELECT $1::int + ", k);
    PgResult prepared(PQprepare(c, name.c_str(), sql.c_str(), 1, nullptr));
    ASSERT_OK(ResultStatus(prepared.get(), c)) << name;
  }
  for (int round = 0; round < 3; ++round) {
    for (int k = 1; k <= 6; ++k) {
      const std::string name = absl::StrCat("q", k);
      const std::string arg = absl::StrCat(100 * round);
      const char* value = arg.c_str();
      PgResult res(PQexecPrepared(c, name.c_str(), 1, &value, nullptr, nullptr, 0));
      ASSERT_OK(ResultStatus(res.get(), c)) << name << " round " << round;
      EXPECT_EQ(Cell(res.get(), 0, 0), absl::StrCat(100 * round + k)) << name;
    }
  }
  EXPECT_EQ(held(), "3");

  // Six reads run prepared, three times over: PostgreSQL's answers each time.
  const std::vector<std::string> reads = {
      "SELECT name FROM pr_items WHERE id = 3", "SELECT big FROM pr_items WHERE id = 4",
      "SELECT code FROM pr_items WHERE id = 5", "SELECT price FROM pr_items WHERE id = 6",
      "SELECT at FROM pr_items WHERE id = 7",   "SELECT score FROM pr_items WHERE id = 8",
  };
  auto run_reads = [&](std::string_view when) {
    for (const std::string& sql : reads) {
      const Answer want = Ask(direct, sql);
      const Answer got = Ask(conn, sql);
      EXPECT_EQ(got, want) << sql << " (" << when << ")\n  got:  " << got.Describe()
                           << "\n  want: " << want.Describe();
    }
  };
  for (int round = 0; round < 3; ++round) run_reads(absl::StrCat("round ", round));
  EXPECT_EQ(held(), "3");

  // An error ahead of a Parse that needs room: the server skips the proxy's Close with it, and
  // the statement it would have closed stays known as prepared (else preparing it again would
  // fail with 42P05).
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_EQ(PQsendQueryParams(c, "SELECT 1/0", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendPrepare(c, "late", "SELECT $1::int * 7", 1, nullptr), 1);
  ASSERT_EQ(PQpipelineSync(c), 1);
  std::vector<ExecStatusType> statuses;
  while (statuses.empty() || statuses.back() != PGRES_PIPELINE_SYNC) {
    PgResult res(PQgetResult(c));
    if (res == nullptr) continue;  // the end of one query's results
    statuses.push_back(PQresultStatus(res.get()));
    ASSERT_LT(statuses.size(), 5u);
  }
  EXPECT_THAT(statuses, ::testing::ElementsAre(PGRES_FATAL_ERROR, PGRES_PIPELINE_ABORTED,
                                               PGRES_PIPELINE_SYNC));
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  run_reads("after the pipeline");
  PgResult late(PQprepare(c, "late", "SELECT $1::int * 7", 1, nullptr));
  ASSERT_OK(ResultStatus(late.get(), c));
  const char* six = "6";
  PgResult product(PQexecPrepared(c, "late", 1, &six, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(product.get(), c));
  EXPECT_EQ(Cell(product.get(), 0, 0), "42");
  EXPECT_EQ(held(), "3");
  auto exited = proxy->Wait(0);
  EXPECT_FALSE(exited.ok()) << "shardgate exited: " << proxy->Log();
}

// With room for one statement, one failed batch closes the client's "a" to prepare "b", then
// closes "b" to prepare "a" again: undone latest first, the proxy knows that the server still
// holds "a" and never got "b" (undone in order it would think the reverse: "a" would then fail
// with 42P05, "b" with 26000).
TEST_F(PreparedReadsTest, OneFailedBatchThatClosesAndPreparesAgain) {
  ProxyEnvOptions o = Options();
  o.extra_database_yaml = absl::StrCat(kPrepare, "    max_prepared_statements: 1\n");
  o.admin_http_port = 0;
  ASSERT_OK_AND_ASSIGN(auto proxy, env().StartExtraProxy(o));
  ASSERT_OK_AND_ASSIGN(PgConn conn,
                       PgConn::Connect(proxy->ConnString("app", kScramUser, kScramPassword)));
  PGconn* c = conn.get();
  const char* two = "2";
  PgResult a(PQprepare(c, "a", "SELECT $1::int + 1", 1, nullptr));
  ASSERT_OK(ResultStatus(a.get(), c));
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_EQ(PQsendQueryParams(c, "SELECT 1/0", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendPrepare(c, "b", "SELECT $1::int + 2", 1, nullptr), 1);
  ASSERT_EQ(PQsendQueryPrepared(c, "a", 1, &two, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(c), 1);
  std::vector<ExecStatusType> statuses;
  while (statuses.empty() || statuses.back() != PGRES_PIPELINE_SYNC) {
    PgResult res(PQgetResult(c));
    if (res == nullptr) continue;
    statuses.push_back(PQresultStatus(res.get()));
    ASSERT_LT(statuses.size(), 6u);
  }
  EXPECT_THAT(statuses, ::testing::ElementsAre(PGRES_FATAL_ERROR, PGRES_PIPELINE_ABORTED,
                                               PGRES_PIPELINE_ABORTED, PGRES_PIPELINE_SYNC));
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  PgResult run_a(PQexecPrepared(c, "a", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(run_a.get(), c));
  EXPECT_EQ(Cell(run_a.get(), 0, 0), "3");
  PgResult b(PQprepare(c, "b", "SELECT $1::int + 2", 1, nullptr));
  ASSERT_OK(ResultStatus(b.get(), c));
  PgResult run_b(PQexecPrepared(c, "b", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(run_b.get(), c));
  EXPECT_EQ(Cell(run_b.get(), 0, 0), "4");
  PgResult run_a_again(PQexecPrepared(c, "a", 1, &two, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(run_a_again.get(), c));
  EXPECT_EQ(Cell(run_a_again.get(), 0, 0), "3");
}

}  // namespace
}  // namespace shardgate::testing
