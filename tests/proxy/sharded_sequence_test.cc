// Issue 10, sharded sequences: `shardctl sequence install` on three real shards for each router
// type that can generate keys (hash_ring, modulo with the partition hash, modulo with hash:
// none, range), then INSERTs without the key through shardgate (generated_key: true; simple
// and extended protocol, RETURNING id, multi-row): every row is on the shard its key routes to
// (read on each primary directly, routed by the Router in-process) and no id repeats. Install
// twice is fine; a reference table, an unknown table and a text key are refused.
#include <sys/wait.h>

#include <cstdio>
#include <set>

#include "tests/proxy/sharded_fixture.h"
#include "tests/support/shardctl_run.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;


const char* const kTables[] = {"t_ring", "t_mod", "t_plain", "t_range"};

class ShardedSequenceTest : public ShardedSuite<ShardedSequenceTest> {
 public:
  static ShardedEnvOptions Options() {
    ShardedEnvOptions o;
    o.replicas = {0, 0, 0};
    o.extra_top_yaml = "reshard: {user: postgres, password: postgres}\n";
    o.extra_database_yaml =
        "    routers:\n"
        "      r_ring: {type: hash_ring, shards: [s0, s1, s2], vnodes: 64}\n"
        "      r_mod: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
        "      r_plain: {type: modulo, hash: none, shards: [s0, s1, s2]}\n"
        "      r_range: {type: range, ranges: [{to: 1000, shard: s0}, {to: 2000, shard: s1}, "
        "{shard: s2}]}\n"
        "    tables:\n"
        "      t_ring: {key: id, router: r_ring, generated_key: true}\n"
        "      t_mod: {key: id, router: r_mod, generated_key: true}\n"
        "      t_plain: {key: id, router: r_plain, generated_key: true}\n"
        "      t_range: {key: id, router: r_range, generated_key: true}\n"
        "      t_text: {key: id, router: r_ring, generated_key: true}\n"
        "      countries: {reference: true}\n";
    return o;
  }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    std::string ddl =
        "CREATE TABLE countries (code text PRIMARY KEY);"
        "CREATE TABLE t_text (id text PRIMARY KEY, v text);";
    for (const char* t : kTables) {
      absl::StrAppend(&ddl, "CREATE TABLE ", t, " (id bigint PRIMARY KEY, v text);");
    }
    absl::Status st = env_->ExecOnPrimaries(ddl);
    if (!st.ok()) FailSetUp(st, "set-up");
  }

  static std::string Ctl(const std::string& rest) {
    return absl::StrCat("--config ", env().proxy->config_path(), " ", rest);
  }
};

TEST_F(ShardedSequenceTest, EveryGeneratedKeyIsOnItsShardAndUnique) {
  for (const char* table : kTables) {
    SCOPED_TRACE(table);
    Shell install = Shardctl(Ctl(absl::StrCat("sequence install ", table)));
    ASSERT_EQ(install.code, 0) << install.out;
    Shell again = Shardctl(Ctl(absl::StrCat("--json sequence install ", table)));
    ASSERT_EQ(again.code, 0) << again.out;
    EXPECT_THAT(again.out, HasSubstr("\"state\": \"installed\""));

    ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
    std::set<int64_t> ids;
    int inserted = 0;
    for (int i = 0; i < 24; ++i) {
      ASSERT_OK_AND_ASSIGN(
          std::string id,
          conn.Scalar(absl::StrCat("INSERT INTO ", table, " (v) VALUES ('simple') RETURNING id")));
      ids.insert(std::stoll(id));
      ++inserted;
    }
    const std::string extended =
        absl::StrCat("INSERT INTO ", table, " (id, v) VALUES (DEFAULT, $1) RETURNING id");
    for (int i = 0; i < 24; ++i) {
      const char* value = "extended";
      PgResult res(
          PQexecParams(conn.get(), extended.c_str(), 1, nullptr, &value, nullptr, nullptr, 0));
      ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
      ids.insert(std::stoll(Cell(res.get(), 0, 0)));
      ++inserted;
    }
    ASSERT_OK_AND_ASSIGN(
        auto rows, conn.Rows(absl::StrCat("INSERT INTO ", table,
                                          " (v) VALUES ('m1'), ('m2'), ('m3') RETURNING id")));
    ASSERT_EQ(rows.size(), 3u);
    for (const auto& row : rows) ids.insert(std::stoll(row[0]));
    inserted += 3;
    EXPECT_EQ(static_cast<int>(ids.size()), inserted) << "an id was generated twice";

    // Read on every primary: each row's key routes to the shard that holds it.
    int seen = 0, shards_with_rows = 0;
    for (int shard = 0; shard < 3; ++shard) {
      ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({shard, -1}));
      ASSERT_OK_AND_ASSIGN(auto on_shard, direct.Rows(absl::StrCat("SELECT id FROM ", table)));
      for (const auto& row : on_shard) {
        const int64_t id = std::stoll(row[0]);
        EXPECT_EQ(env().ShardOf(table, id), shard) << "key " << id << " is on s" << shard;
        EXPECT_TRUE(ids.count(id)) << "row " << id << " was not inserted by this test";
        ++seen;
      }
      if (!on_shard.empty()) ++shards_with_rows;
    }
    EXPECT_EQ(seen, inserted);
    EXPECT_GE(shards_with_rows, 2) << "the inserts without a key all went to one shard";
  }
}

// COPY with a column list that leaves the key out: one shard takes it, the shard's keys.
TEST_F(ShardedSequenceTest, CopyWithoutTheKeyGoesToOneShard) {
  Shell install = Shardctl(Ctl("sequence install t_range"));
  ASSERT_EQ(install.code, 0) << install.out;
  auto count_all = [] {
    int64_t n = 0;
    for (int shard = 0; shard < 3; ++shard) {
      auto c = env().ConnectDirect({shard, -1});
      if (!c.ok()) return int64_t{-1};
      n += std::stoll(Text(c->Scalar("SELECT count(*) FROM t_range")));
    }
    return n;
  };
  const int64_t before = count_all();
  ASSERT_GE(before, 0);
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  PgResult start(PQexec(conn.get(), "COPY t_range (v) FROM STDIN"));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQerrorMessage(conn.get());
  const std::string data = "c1\nc2\nc3\nc4\nc5\n";
  ASSERT_EQ(PQputCopyData(conn.get(), data.data(), static_cast<int>(data.size())), 1);
  ASSERT_EQ(PQputCopyEnd(conn.get(), nullptr), 1);
  PgResult done(PQgetResult(conn.get()));
  ASSERT_EQ(PQresultStatus(done.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn.get());
  EXPECT_STREQ(PQcmdStatus(done.get()), "COPY 5");
  EXPECT_EQ(count_all(), before + 5);
  for (int shard = 0; shard < 3; ++shard) {
    ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({shard, -1}));
    ASSERT_OK_AND_ASSIGN(auto rows, direct.Rows("SELECT id FROM t_range WHERE v LIKE 'c_'"));
    for (const auto& row : rows) EXPECT_EQ(env().ShardOf("t_range", std::stoll(row[0])), shard);
  }
}

TEST_F(ShardedSequenceTest, StatusAndRemove) {
  Shell install = Shardctl(Ctl("sequence install t_ring --column id"));
  ASSERT_EQ(install.code, 0) << install.out;
  Shell status = Shardctl(Ctl("--json sequence status t_ring"));
  ASSERT_EQ(status.code, 0) << status.out;
  EXPECT_THAT(status.out, HasSubstr("\"sequence\": \"t_ring_id_sg_seq\""));
  Shell removed = Shardctl(Ctl("sequence remove t_ring"));
  ASSERT_EQ(removed.code, 0) << removed.out;
  Shell after = Shardctl(Ctl("sequence status t_ring"));
  ASSERT_EQ(after.code, 0) << after.out;
  EXPECT_THAT(after.out, HasSubstr("s0: absent"));
  ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({1, -1}));
  EXPECT_EQ(Text(direct.Scalar("SELECT count(*) FROM pg_proc WHERE proname = 't_ring_id_sg_next'")),
            "0");
  // Installed again: the new sequences start past the keys each shard holds (the first test's
  // rows, when it ran first; a few written with explicit keys here in any case).
  for (int shard = 0; shard < 3; ++shard) {
    for (int64_t k : env().KeysOn("t_ring", shard, 3, 1)) {
      ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({shard, -1}));
      ASSERT_OK(direct.Exec(absl::StrCat("INSERT INTO t_ring (id, v) VALUES (", k,
                                         ", 'explicit') ON CONFLICT DO NOTHING")));
    }
  }
  Shell back = Shardctl(Ctl("sequence install t_ring"));
  ASSERT_EQ(back.code, 0) << back.out;
  ASSERT_OK_AND_ASSIGN(PgConn conn, env().Connect());
  for (int i = 0; i < 12; ++i) {
    EXPECT_OK(conn.Exec("INSERT INTO t_ring (v) VALUES ('after reinstall')"));
  }
}

TEST_F(ShardedSequenceTest, RefusesWhatCannotHaveASequence) {
  Shell reference = Shardctl(Ctl("sequence install countries"));
  EXPECT_EQ(reference.code, 1);
  EXPECT_THAT(reference.out, HasSubstr("reference table"));
  Shell unknown = Shardctl(Ctl("--json sequence install nope"));
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.out, HasSubstr("\"sqlstate\": \"42P01\""));
  EXPECT_THAT(unknown.out, HasSubstr("not in the shard map"));
  Shell text = Shardctl(Ctl("sequence install t_text"));
  EXPECT_EQ(text.code, 1);
  EXPECT_THAT(text.out, HasSubstr("42804"));
  Shell column = Shardctl(Ctl("sequence install t_mod --column v"));
  EXPECT_EQ(column.code, 1);
  EXPECT_THAT(column.out, HasSubstr("not the shard key"));
  // Nothing was installed on t_text by the refused install.
  ASSERT_OK_AND_ASSIGN(PgConn direct, env().ConnectDirect({0, -1}));
  EXPECT_EQ(Text(direct.Scalar("SELECT to_regclass('t_text_id_sg_seq') IS NULL")), "t");
}

}  // namespace
}  // namespace shardgate::testing
