// Extended-protocol pipelines through shardgate (libpq pipeline mode): an error in the middle
// aborts the rest up to Sync and leaves the connection usable; a long pipeline of prepared
// executions comes back complete and in order.
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

// The next result of a pipeline; libpq ends each query's results with a null result, which
// this checks and consumes as well.
PgResult NextQueryResult(PGconn* conn) {
  PgResult res(PQgetResult(conn));
  if (res != nullptr && PQresultStatus(res.get()) != PGRES_PIPELINE_SYNC) {
    PgResult end(PQgetResult(conn));
    EXPECT_EQ(end, nullptr) << "more than one result for one query";
  }
  return res;
}

bool SendParams(PGconn* conn, const char* sql, const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return PQsendQueryParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(),
                           nullptr, nullptr, 0) == 1;
}

TEST_F(QueryTest, PipelineErrorInTheMiddleAbortsUntilSync) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_TRUE(SendParams(c, "select 1"));
  ASSERT_TRUE(SendParams(c, "select 1/0"));
  ASSERT_TRUE(SendParams(c, "select 3"));
  ASSERT_EQ(PQpipelineSync(c), 1);
  // After the sync, a second batch must run normally.
  ASSERT_TRUE(SendParams(c, "select $1::int + 1", {"41"}));
  ASSERT_EQ(PQpipelineSync(c), 1);

  PgResult first = NextQueryResult(c);
  ASSERT_NE(first, nullptr) << PQerrorMessage(c);
  ASSERT_EQ(PQresultStatus(first.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(first.get());
  EXPECT_EQ(Cell(first.get(), 0, 0), "1");

  PgResult second = NextQueryResult(c);
  ASSERT_NE(second, nullptr);
  EXPECT_THAT(ResultStatus(second.get()), HasSqlState("22012"));

  PgResult third = NextQueryResult(c);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(PQresultStatus(third.get()), PGRES_PIPELINE_ABORTED);

  PgResult sync = NextQueryResult(c);
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);

  PgResult after = NextQueryResult(c);
  ASSERT_NE(after, nullptr);
  ASSERT_EQ(PQresultStatus(after.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(after.get());
  EXPECT_EQ(Cell(after.get(), 0, 0), "42");
  PgResult sync2 = NextQueryResult(c);
  ASSERT_NE(sync2, nullptr);
  EXPECT_EQ(PQresultStatus(sync2.get()), PGRES_PIPELINE_SYNC);

  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  EXPECT_EQ(Text(conn.Scalar("select 'still usable'")), "still usable");
  EXPECT_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
}

TEST_F(QueryTest, PipelineErrorInsideTransactionRollsBackTheBatch) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("create table if not exists pipe_tx (v int)"));
  ASSERT_OK(conn.Exec("truncate pipe_tx"));
  PGconn* c = conn.get();
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_TRUE(SendParams(c, "begin"));
  ASSERT_TRUE(SendParams(c, "insert into pipe_tx values (1)"));
  ASSERT_TRUE(SendParams(c, "insert into pipe_tx values (1/0)"));
  ASSERT_TRUE(SendParams(c, "commit"));
  ASSERT_EQ(PQpipelineSync(c), 1);
  EXPECT_OK(ResultStatus(NextQueryResult(c).get()));
  EXPECT_OK(ResultStatus(NextQueryResult(c).get()));
  EXPECT_THAT(ResultStatus(NextQueryResult(c).get()), HasSqlState("22012"));
  PgResult commit = NextQueryResult(c);
  ASSERT_NE(commit, nullptr);
  EXPECT_EQ(PQresultStatus(commit.get()), PGRES_PIPELINE_ABORTED);
  PgResult sync = NextQueryResult(c);
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  // The failed transaction is still open on the server side until ROLLBACK.
  EXPECT_EQ(PQtransactionStatus(c), PQTRANS_INERROR);
  EXPECT_OK(conn.Exec("rollback"));
  EXPECT_EQ(Text(conn.Scalar("select count(*) from pipe_tx")), "0");
}

TEST_F(QueryTest, PipelineOfHundredPreparedExecutions) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  constexpr int kCount = 100;
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_EQ(PQsendPrepare(c, "double_it", "select $1::int * 2", 1, nullptr), 1);
  std::vector<std::string> params;
  for (int i = 0; i < kCount; ++i) params.push_back(std::to_string(i));
  for (int i = 0; i < kCount; ++i) {
    const char* value = params[i].c_str();
    ASSERT_EQ(PQsendQueryPrepared(c, "double_it", 1, &value, nullptr, nullptr, 0), 1);
  }
  ASSERT_EQ(PQpipelineSync(c), 1);

  PgResult prepared = NextQueryResult(c);
  ASSERT_NE(prepared, nullptr);
  ASSERT_EQ(PQresultStatus(prepared.get()), PGRES_COMMAND_OK)
      << PQresultErrorMessage(prepared.get());
  for (int i = 0; i < kCount; ++i) {
    PgResult res = NextQueryResult(c);
    ASSERT_NE(res, nullptr) << "result " << i << " missing: " << PQerrorMessage(c);
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << i << PQresultErrorMessage(res.get());
    ASSERT_EQ(Cell(res.get(), 0, 0), std::to_string(2 * i));
  }
  PgResult sync = NextQueryResult(c);
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(c), 1);
  // The statement outlives the pipeline: the client may use it later (on any server).
  const char* value = "21";
  PgResult again(PQexecPrepared(c, "double_it", 1, &value, nullptr, nullptr, 0));
  ASSERT_OK(ResultStatus(again.get()));
  EXPECT_EQ(Cell(again.get(), 0, 0), "42");
}

TEST_F(QueryTest, ServerErrorsPassThroughUntouched) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  EXPECT_THAT(conn.Exec("select * from no_such_table"), HasSqlState("42P01"));
  EXPECT_THAT(conn.Exec("select no_such_column from pg_class"), HasSqlState("42703"));
  EXPECT_THAT(conn.Exec("selec 1"), HasSqlState("42601"));
  EXPECT_EQ(Text(conn.Scalar("select 1")), "1");
}

TEST_F(QueryTest, NoticesReachTheClient) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  std::string notices;
  PQsetNoticeProcessor(
      conn.get(), [](void* arg, const char* msg) { *static_cast<std::string*>(arg) += msg; },
      &notices);
  ASSERT_OK(conn.Exec("do $$ begin raise notice 'hello from plpgsql'; end $$"));
  EXPECT_THAT(notices, ::testing::HasSubstr("hello from plpgsql"));
}

}  // namespace
}  // namespace shardgate::testing
