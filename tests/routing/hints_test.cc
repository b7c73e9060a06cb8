// Routing hints in comments and in shardgate.* session variables.
#include "routing/hints.h"

#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace shardgate::routing {
namespace {

using shardgate::testing::HasSqlState;

struct CommentCase {
  std::string sql;
  std::optional<std::string> shard, key;
  std::optional<Role> role;
};

class CommentHints : public ::testing::TestWithParam<CommentCase> {};

TEST_P(CommentHints, Parses) {
  const CommentCase& c = GetParam();
  auto h = ParseCommentHints(c.sql);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->shard, c.shard) << c.sql;
  EXPECT_EQ(h->key, c.key) << c.sql;
  EXPECT_EQ(h->role, c.role) << c.sql;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CommentHints,
    ::testing::Values(
        CommentCase{"/* shardgate: shard=s1 */ SELECT 1", "s1", {}, {}},
        CommentCase{"SELECT 1 /* shardgate: key=42 */", {}, "42", {}},
        CommentCase{"SELECT 1; /* shardgate: primary */  ", {}, {}, Role::kPrimary},
        CommentCase{"  /* other */ /* shardgate: shard = 's2', replica */ SELECT 1", "s2", {},
                    Role::kReplica},
        CommentCase{"-- shardgate: key='a b'\nSELECT 1", {}, "a b", {}},
        CommentCase{"/* SHARDGATE: any */ SELECT 1", {}, {}, Role::kAny},
        CommentCase{"SELECT '/* shardgate: shard=s1 */'", {}, {}, {}},
        CommentCase{"SELECT 1 /* shardgate: shard=s1 */ + 1", {}, {}, {}},
        CommentCase{"SELECT 1 -- not a hint", {}, {}, {}},
        CommentCase{"SELECT 1", {}, {}, {}}));

TEST(CommentHints, ErrorsOnTyposAndConflicts) {
  EXPECT_THAT(ParseCommentHints("/* shardgate: shrd=s1 */ SELECT 1"), HasSqlState("42601"));
  EXPECT_THAT(ParseCommentHints("/* shardgate: primry */ SELECT 1"), HasSqlState("42601"));
  EXPECT_THAT(ParseCommentHints("/* shardgate: shard= */ SELECT 1"), HasSqlState("42601"));
  EXPECT_THAT(ParseCommentHints("/* shardgate: shard=s1 key=4 */ SELECT 1"),
              HasSqlState("42601"));
  EXPECT_THAT(ParseCommentHints("/* shardgate: key='4 */ SELECT 1"), HasSqlState("42601"));
}

TEST(CommentHints, CacheTtl) {
  auto ttl = [](const std::string& sql) -> int64_t {
    auto h = ParseCommentHints(sql);
    if (!h.ok() || !h->cache) return -1;
    return h->cache->count();
  };
  EXPECT_EQ(ttl("/* shardgate: cache=30s */ SELECT 1"), 30000);
  EXPECT_EQ(ttl("SELECT 1 /* shardgate: cache=250ms, replica */"), 250);
  EXPECT_EQ(ttl("/* shardgate: cache=2m */ SELECT 1"), 120000);
  EXPECT_EQ(ttl("/* shardgate: cache=45 */ SELECT 1"), 45000);
  EXPECT_EQ(ttl("/* shardgate: cache=off */ SELECT 1"), 0);
  EXPECT_EQ(ttl("SELECT 1"), -1);
  EXPECT_THAT(ParseCommentHints("/* shardgate: cache=soon */ SELECT 1"), HasSqlState("42601"));
  EXPECT_THAT(ParseCommentHints("/* shardgate: cache=30x */ SELECT 1"), HasSqlState("42601"));
  EXPECT_THAT(ParseCommentHints("/* shardgate: cache=48h */ SELECT 1"), HasSqlState("42601"));
}

struct SetCase {
  std::string sql;
  bool recognized;
  SessionHint::Op op = SessionHint::Op::kSet;
  std::string name = "";
  std::string value = "";
};

class SessionHints : public ::testing::TestWithParam<SetCase> {};

TEST_P(SessionHints, Parses) {
  const SetCase& c = GetParam();
  auto r = ParseSessionHint(c.sql);
  ASSERT_EQ(r.has_value(), c.recognized) << c.sql;
  if (!r) return;
  ASSERT_TRUE(r->ok()) << r->status();
  EXPECT_EQ((*r)->op, c.op);
  EXPECT_EQ((*r)->name, c.name);
  EXPECT_EQ((*r)->value, c.value);
}

INSTANTIATE_TEST_SUITE_P(
    Table, SessionHints,
    ::testing::Values(
        SetCase{"SET shardgate.shard = 's1'", true, SessionHint::Op::kSet, "shard", "s1"},
        SetCase{"set SESSION shardgate.key TO '42';", true, SessionHint::Op::kSet, "key", "42"},
        SetCase{"SET shardgate.key = 42", true, SessionHint::Op::kSet, "key", "42"},
        SetCase{"SET shardgate.key = 'it''s'", true, SessionHint::Op::kSet, "key", "it's"},
        SetCase{"/* c */ RESET shardgate.shard", true, SessionHint::Op::kReset, "shard", ""},
        SetCase{"SET shardgate.shard TO DEFAULT", true, SessionHint::Op::kReset, "shard", ""},
        SetCase{"RESET ALL", true, SessionHint::Op::kResetAll, "", ""},
        SetCase{"SET search_path = public", false},
        SetCase{"SELECT 1", false}, SetCase{"SETTINGS", false},
        // Leading comments and what only looks like one.
        SetCase{"-- c\n  /* d */ SET shardgate.shard = 's2'", true, SessionHint::Op::kSet,
                "shard", "s2"},
        SetCase{"-- no newline SET shardgate.shard = 's2'", false},
        SetCase{"/ SET shardgate.shard = 's1'", false},
        SetCase{"- SET shardgate.shard = 's1'", false}, SetCase{"-", false}, SetCase{"", false}));

TEST(SessionHints, Errors) {
  auto unknown = ParseSessionHint("SET shardgate.shrd = 's1'");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_THAT(*unknown, HasSqlState("42704"));
  auto junk = ParseSessionHint("SET shardgate.shard = 's1' junk");
  ASSERT_TRUE(junk.has_value());
  EXPECT_THAT(*junk, HasSqlState("42601"));
  auto open = ParseSessionHint("SET shardgate.shard = 's1");
  ASSERT_TRUE(open.has_value());
  EXPECT_THAT(*open, HasSqlState("42601"));
}

TEST(SessionHints, ApplyAndMerge) {
  Hints session;
  ApplySessionHint({SessionHint::Op::kSet, "shard", "s1"}, session);
  EXPECT_EQ(session.shard, "s1");
  ApplySessionHint({SessionHint::Op::kSet, "key", "7"}, session);
  EXPECT_EQ(session.key, "7");
  EXPECT_FALSE(session.shard.has_value());  // alternatives: the last one wins
  Hints statement;
  statement.role = Role::kPrimary;
  statement.MergeFrom(session);
  EXPECT_EQ(statement.key, "7");
  EXPECT_EQ(statement.role, Role::kPrimary);
  Hints explicit_shard;
  explicit_shard.shard = "s2";
  explicit_shard.MergeFrom(session);
  EXPECT_FALSE(explicit_shard.key.has_value());  // the statement's own hint wins
  ApplySessionHint({SessionHint::Op::kResetAll, "", ""}, session);
  EXPECT_TRUE(session.empty());
}

}  // namespace
}  // namespace shardgate::routing
