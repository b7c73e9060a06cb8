// Issue 10: `SELECT shardgate.next_id()` in the extended protocol (PQprepare, PQexecParams,
// pipelines), answered by the proxy alone: the shard's server is stopped while the proxy
// answers, so any message that reached a server would fail the test.
#include <arpa/inet.h>

#include <cstring>

#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

class NextIdExtendedTest : public ProxySuite<NextIdExtendedTest> {};

int64_t BinaryInt8(const PGresult* res) {
  uint64_t v = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(res, 0, 0));
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return static_cast<int64_t>(v);
}

TEST_F(NextIdExtendedTest, PreparedAndParamsAreAnsweredWithTheServerStopped) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  ASSERT_OK(env().primary().Stop());
  PgResult prep(PQprepare(c, "nid", "SELECT shardgate.next_id() AS order_id", 0, nullptr));
  ASSERT_EQ(PQresultStatus(prep.get()), PGRES_COMMAND_OK) << PQerrorMessage(c);
  PgResult desc(PQdescribePrepared(c, "nid"));
  ASSERT_EQ(PQresultStatus(desc.get()), PGRES_COMMAND_OK) << PQerrorMessage(c);
  EXPECT_EQ(PQnparams(desc.get()), 0);
  ASSERT_EQ(PQnfields(desc.get()), 1);
  EXPECT_STREQ(PQfname(desc.get(), 0), "order_id");
  EXPECT_EQ(PQftype(desc.get(), 0), 20u);

  int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    const int binary = i % 2;
    PgResult res(PQexecPrepared(c, "nid", 0, nullptr, nullptr, nullptr, binary));
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(c);
    ASSERT_EQ(PQntuples(res.get()), 1);
    EXPECT_STREQ(PQfname(res.get(), 0), "order_id");
    EXPECT_EQ(PQfformat(res.get(), 0), binary);
    int64_t id;
    if (binary) {
      ASSERT_EQ(PQgetlength(res.get(), 0, 0), 8);
      id = BinaryInt8(res.get());
    } else {
      id = std::stoll(PQgetvalue(res.get(), 0, 0));
    }
    EXPECT_GT(id, last) << "ids must increase";
    last = id;
    EXPECT_STREQ(PQcmdStatus(res.get()), "SELECT 1");
  }
  // The unnamed statement (Parse, Bind, Describe portal, Execute, Sync), any case and spacing.
  PgResult params(
      PQexecParams(c, "select  SHARDGATE.next_id ( ) ;", 0, nullptr, nullptr, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(params.get()), PGRES_TUPLES_OK) << PQerrorMessage(c);
  EXPECT_STREQ(PQfname(params.get(), 0), "next_id");
  EXPECT_GT(std::stoll(PQgetvalue(params.get(), 0, 0)), last);

  // A parameter the statement does not take: the server's error, and the session goes on.
  const char* value = "1";
  PgResult bad(PQexecPrepared(c, "nid", 1, &value, nullptr, nullptr, 0));
  EXPECT_THAT(ResultStatus(bad.get()), HasSqlState("08P01"));

  // A pipeline of several, in order.
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(PQsendQueryPrepared(c, "nid", 0, nullptr, nullptr, nullptr, 0), 1);
  }
  ASSERT_EQ(PQpipelineSync(c), 1);
  int64_t prev = 0;
  for (int i = 0; i < 3; ++i) {
    PgResult r = NextQueryResult(c);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r.get());
    const int64_t id = std::stoll(PQgetvalue(r.get(), 0, 0));
    EXPECT_GT(id, prev);
    prev = id;
  }
  PgResult sync = NextQueryResult(c);
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  EXPECT_EQ(PQtransactionStatus(c), PQTRANS_IDLE);

  ASSERT_OK(env().primary().Restart());
}

TEST_F(NextIdExtendedTest, PipelinedWithServerQueriesInOrder) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_EQ(PQsendQueryParams(c, "select 41 + 1", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(c, "select shardgate.next_id() as a", 0, nullptr, nullptr, nullptr,
                              nullptr, 1),
            1);
  ASSERT_EQ(PQsendQueryParams(c, "select pg_sleep(0.05), 'after'", 0, nullptr, nullptr, nullptr,
                              nullptr, 0),
            1);
  ASSERT_EQ(PQsendQueryParams(c, "select shardgate.next_id() b", 0, nullptr, nullptr, nullptr,
                              nullptr, 0),
            1);
  ASSERT_EQ(PQpipelineSync(c), 1);
  PgResult r1 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r1.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r1.get());
  EXPECT_EQ(Cell(r1.get(), 0, 0), "42");
  PgResult r2 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r2.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r2.get());
  EXPECT_STREQ(PQfname(r2.get(), 0), "a");
  ASSERT_EQ(PQgetlength(r2.get(), 0, 0), 8);
  const int64_t a = BinaryInt8(r2.get());
  PgResult r3 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r3.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r3.get());
  EXPECT_EQ(Cell(r3.get(), 0, 1), "after");
  PgResult r4 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r4.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r4.get());
  EXPECT_STREQ(PQfname(r4.get(), 0), "b");
  EXPECT_GT(std::stoll(Cell(r4.get(), 0, 0)), a);
  PgResult sync = NextQueryResult(c);
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  // The unnamed statement, next_id a moment ago, is now another statement: the server's.
  PgResult other(PQexecParams(c, "select 7", 0, nullptr, nullptr, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(other.get()), PGRES_TUPLES_OK) << PQerrorMessage(c);
  EXPECT_EQ(Cell(other.get(), 0, 0), "7");
}

}  // namespace
}  // namespace shardgate::testing
