// Bulk data through shardgate: COPY FROM STDIN / TO STDOUT of ~100 MB (compared byte for byte
// with the server's own COPY), COPY errors and CopyFail, and 50 MB values both ways.
#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kCopyRows = 1'100'000;  // ~100 bytes each: ~105 MB of COPY text

// Row `i` of the COPY text: "i\t<88 characters derived from i>\n".
void AppendRow(std::string& out, int i) {
  absl::StrAppend(&out, i, "\t");
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (int k = 0; k < 88; ++k) out.push_back(kAlphabet[(i * 7 + k * 13) % 36]);
  out.push_back('\n');
}

// Bytes and an FNV-1a hash of everything a COPY TO STDOUT produced.
struct CopyOut {
  int64_t bytes = 0;
  uint64_t hash = 1469598103934665603ull;
  int64_t rows = 0;
};

absl::StatusOr<CopyOut> RunCopyOut(PGconn* conn, const std::string& sql) {
  PgResult start(PQexec(conn, sql.c_str()));
  if (PQresultStatus(start.get()) != PGRES_COPY_OUT) {
    absl::Status st = ResultStatus(start.get(), conn);
    return st.ok() ? absl::InternalError("COPY did not start") : st;
  }
  CopyOut out;
  // Bounded: each iteration consumes one CopyData message; 10M is far above what we send.
  for (int64_t i = 0; i < 10'000'000; ++i) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn, &buf, 0);
    if (n == -1) break;  // done
    if (n < 0) return PgStatus(kNoSqlState, PQerrorMessage(conn));
    for (int k = 0; k < n; ++k) {
      out.hash = (out.hash ^ static_cast<unsigned char>(buf[k])) * 1099511628211ull;
      if (buf[k] == '\n') ++out.rows;
    }
    out.bytes += n;
    PQfreemem(buf);
  }
  PgResult end(PQgetResult(conn));
  RETURN_IF_ERROR(ResultStatus(end.get(), conn));
  return out;
}

TEST_F(QueryTest, CopyInAndOutOfHundredMegabytes) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("drop table if exists copy_big; create table copy_big (id int, payload text)"));

  PgResult start(PQexec(conn.get(), "copy copy_big from stdin"));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQresultErrorMessage(start.get());
  std::string chunk;
  chunk.reserve(70 * 1024);
  int64_t sent = 0;
  for (int i = 0; i < kCopyRows; ++i) {
    AppendRow(chunk, i);
    if (chunk.size() >= 64 * 1024 || i + 1 == kCopyRows) {
      ASSERT_EQ(PQputCopyData(conn.get(), chunk.data(), static_cast<int>(chunk.size())), 1)
          << PQerrorMessage(conn.get());
      sent += static_cast<int64_t>(chunk.size());
      chunk.clear();
    }
  }
  ASSERT_GT(sent, 100'000'000);
  ASSERT_EQ(PQputCopyEnd(conn.get(), nullptr), 1);
  PgResult done(PQgetResult(conn.get()));
  ASSERT_OK(ResultStatus(done.get()));
  EXPECT_STREQ(PQcmdTuples(done.get()), std::to_string(kCopyRows).c_str());
  EXPECT_EQ(PgResult(PQgetResult(conn.get())), nullptr);
  EXPECT_EQ(Text(conn.Scalar("select count(*) from copy_big")), std::to_string(kCopyRows));

  ASSERT_OK_AND_ASSIGN(CopyOut through_proxy, RunCopyOut(conn.get(), "copy copy_big to stdout"));
  ASSERT_OK_AND_ASSIGN(PgConn direct, PgConn::Connect(env().DirectConnString()));
  ASSERT_OK_AND_ASSIGN(CopyOut straight, RunCopyOut(direct.get(), "copy copy_big to stdout"));
  EXPECT_EQ(through_proxy.rows, kCopyRows);
  EXPECT_EQ(through_proxy.bytes, sent);
  EXPECT_EQ(through_proxy.bytes, straight.bytes);
  EXPECT_EQ(through_proxy.hash, straight.hash);
  // After 100 MB each way the session is still in step.
  EXPECT_EQ(Text(conn.Scalar("select 'after copy'")), "after copy");
  ASSERT_OK(conn.Exec("drop table copy_big"));
}

TEST_F(QueryTest, CopyWithBadDataFailsAndConnectionRecovers) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("drop table if exists copy_bad; create table copy_bad (id int)"));
  PgResult start(PQexec(conn.get(), "copy copy_bad from stdin"));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN);
  std::string data;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&data, i, "\n");
  data += "not-a-number\n";
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&data, i, "\n");
  ASSERT_EQ(PQputCopyData(conn.get(), data.data(), static_cast<int>(data.size())), 1);
  ASSERT_EQ(PQputCopyEnd(conn.get(), nullptr), 1);
  PgResult done(PQgetResult(conn.get()));
  EXPECT_THAT(ResultStatus(done.get()), HasSqlState("22P02"));
  EXPECT_EQ(PgResult(PQgetResult(conn.get())), nullptr);
  EXPECT_EQ(Text(conn.Scalar("select count(*) from copy_bad")), "0");
}

TEST_F(QueryTest, CopyFailFromClientAbortsCopy) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("drop table if exists copy_fail; create table copy_fail (id int)"));
  PgResult start(PQexec(conn.get(), "copy copy_fail from stdin"));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN);
  ASSERT_EQ(PQputCopyData(conn.get(), "1\n2\n", 4), 1);
  ASSERT_EQ(PQputCopyEnd(conn.get(), "client changed its mind"), 1);
  PgResult done(PQgetResult(conn.get()));
  // PostgreSQL reports a CopyFail as query_canceled with the client's text.
  EXPECT_THAT(ResultStatus(done.get()), HasSqlState("57014"));
  EXPECT_THAT(PQresultErrorMessage(done.get()), HasSubstr("client changed its mind"));
  EXPECT_EQ(PgResult(PQgetResult(conn.get())), nullptr);
  EXPECT_EQ(Text(conn.Scalar("select count(*) from copy_fail")), "0");
}

constexpr int kFiftyMb = 50 * 1024 * 1024;

TEST_F(QueryTest, FiftyMegabyteRowComesBack) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PgResult res(PQexec(conn.get(), "select repeat('x', 50*1024*1024)"));
  ASSERT_OK(ResultStatus(res.get()));
  ASSERT_EQ(PQntuples(res.get()), 1);
  ASSERT_EQ(PQgetlength(res.get(), 0, 0), kFiftyMb);
  const std::string_view value(PQgetvalue(res.get(), 0, 0), kFiftyMb);
  EXPECT_EQ(value.find_first_not_of('x'), std::string_view::npos);
  EXPECT_EQ(Text(conn.Scalar("select 'small again'")), "small again");
}

TEST_F(QueryTest, FiftyMegabyteParameterGoesIn) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  ASSERT_OK(conn.Exec("drop table if exists big_param; create table big_param (v text)"));
  const std::string value(kFiftyMb, 'y');
  ASSERT_OK(conn.ScalarParams("insert into big_param values ($1)", {value}).status());
  EXPECT_EQ(Text(conn.Scalar("select length(v) from big_param")), std::to_string(kFiftyMb));
  EXPECT_EQ(Text(conn.Scalar("select v = repeat('y', 50*1024*1024) from big_param")), "t");
  // And the same value back through the proxy in the extended protocol.
  ASSERT_OK_AND_ASSIGN(std::string back, conn.ScalarParams("select v from big_param", {}));
  EXPECT_EQ(back.size(), value.size());
  EXPECT_TRUE(back == value);
  ASSERT_OK(conn.Exec("drop table big_param"));
}

}  // namespace
}  // namespace shardgate::testing
