// Issue 10 on a sharded database: `SELECT shardgate.next_id()` in the extended protocol is
// answered by the proxy (no shard's pg_stat_statements ever sees it), in order with statements
// that do go to the shards in the same pipeline.
#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

class ShardedNextIdTest : public ShardedSuite<ShardedNextIdTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0};
    o.extra_database_yaml =
        "    routers:\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1]}\n"
        "    tables:\n"
        "      items: {key: id, router: r_mod}\n";
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    // A server that got the statement would answer -1 and count it in pg_stat_statements.
    SetUpWithSchema(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text);"
        "CREATE SCHEMA shardgate;"
        "CREATE FUNCTION shardgate.next_id() RETURNS bigint LANGUAGE sql AS 'SELECT -1'");
  }
};

TEST_F(ShardedNextIdTest, ExtendedProtocolIsAnsweredByTheProxyInOrder) {
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PGconn* c = conn.get();
  PgResult prep(PQprepare(c, "nid", "SELECT shardgate.next_id() AS new_id", 0, nullptr));
  ASSERT_EQ(PQresultStatus(prep.get()), PGRES_COMMAND_OK) << PQerrorMessage(c);
  PgResult desc(PQdescribePrepared(c, "nid"));
  ASSERT_EQ(PQresultStatus(desc.get()), PGRES_COMMAND_OK) << PQerrorMessage(c);
  EXPECT_EQ(PQnparams(desc.get()), 0);
  EXPECT_STREQ(PQfname(desc.get(), 0), "new_id");
  EXPECT_EQ(PQftype(desc.get(), 0), 20u);

  // A pipeline: a row inserted with a proxy id, next_id again (binary), a read of the row.
  const int64_t key = env().KeysOn("items", 1, 1, 9000)[0];
  const std::string key_text = std::to_string(key);
  const char* key_param = key_text.c_str();
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  ASSERT_EQ(PQsendQueryPrepared(c, "nid", 0, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(c, "insert into items (id, v) values ($1, 'x') returning v", 1,
                              nullptr, &key_param, nullptr, nullptr, 0),
            1);
  ASSERT_EQ(PQsendQueryPrepared(c, "nid", 0, nullptr, nullptr, nullptr, 1), 1);
  ASSERT_EQ(
      PQsendQueryParams(c, "select shardgate.next_id()", 0, nullptr, nullptr, nullptr, nullptr, 0),
      1);
  ASSERT_EQ(PQpipelineSync(c), 1);
  PgResult r1 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r1.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r1.get());
  const int64_t first = std::stoll(Cell(r1.get(), 0, 0));
  EXPECT_GT(first, 0);
  PgResult r2 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r2.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r2.get());
  EXPECT_EQ(Cell(r2.get(), 0, 0), "x");
  PgResult r3 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r3.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r3.get());
  ASSERT_EQ(PQgetlength(r3.get(), 0, 0), 8);
  uint64_t second = 0;
  for (int i = 0; i < 8; ++i) {
    second = (second << 8) | static_cast<unsigned char>(PQgetvalue(r3.get(), 0, 0)[i]);
  }
  EXPECT_GT(static_cast<int64_t>(second), first);
  PgResult r4 = NextQueryResult(c);
  ASSERT_EQ(PQresultStatus(r4.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r4.get());
  EXPECT_GT(std::stoll(Cell(r4.get(), 0, 0)), static_cast<int64_t>(second));
  PgResult sync = NextQueryResult(c);
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
  EXPECT_EQ(Text(conn.Scalar("select v from items where id = " + key_text)), "x");

  // Inside a transaction on a shard too.
  ASSERT_OK(conn.Exec("BEGIN"));
  ASSERT_OK(conn.Exec("select v from items where id = " + key_text));
  PgResult in_tx(PQexecPrepared(c, "nid", 0, nullptr, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(in_tx.get()), PGRES_TUPLES_OK) << PQerrorMessage(c);
  EXPECT_EQ(PQtransactionStatus(c), PQTRANS_INTRANS);
  ASSERT_OK(conn.Exec("COMMIT"));

  for (int shard = 0; shard < 2; ++shard) {
    EXPECT_EQ(env().Calls({shard, -1}, "%select%shardgate.next_id%"), 0)
        << "s" << shard << " saw next_id";
  }
}

}  // namespace
}  // namespace shardgate::testing
