// YamlEditor: edits land where the parse saw the nodes, the rest of the text is untouched, and
// the result parses to what was meant; YamlScalar reads back as the same string.
#include "conf/yaml_edit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "conf/node.h"

namespace shardgate::conf {
namespace {

using ::testing::HasSubstr;

Node Parse(const std::string& yaml) {
  auto node = ParseYaml(yaml, "edit.yaml");
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? *node : Node{};
}

std::string Apply(const YamlEditor& editor) {
  auto out = editor.Result();
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

TEST(YamlScalarTest, PlainWhenItReadsBackElseQuoted) {
  EXPECT_EQ(YamlScalar("s2"), "s2");
  EXPECT_EQ(YamlScalar("42"), "42");
  EXPECT_EQ(YamlScalar("-7"), "-7");
  EXPECT_EQ(YamlScalar("by_user_pinned"), "by_user_pinned");
  EXPECT_EQ(YamlScalar("null"), "\"null\"");
  EXPECT_EQ(YamlScalar("~"), "\"~\"");
  EXPECT_EQ(YamlScalar(""), "\"\"");
  EXPECT_EQ(YamlScalar("a b"), "\"a b\"");
  EXPECT_EQ(YamlScalar("x: y"), "\"x: y\"");
  EXPECT_EQ(YamlScalar("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
  for (const std::string s : {"null", "~", "", "a b", "#c", "{x}", "-", "x: y", "q\"\\", "é t",
                              "tab\there", "- 1", "*a", "&a", "!t", "'s'"}) {
    Node n = Parse("k: " + YamlScalar(s) + "\n");
    ASSERT_NE(n.Find("k"), nullptr) << s;
    EXPECT_EQ(n.Find("k")->kind, Node::Kind::kScalar) << s;
    EXPECT_EQ(n.Find("k")->scalar, s) << YamlScalar(s);
  }
}

TEST(YamlEditorTest, ReplacesPlainAndQuotedScalarsInFlowAndBlockMaps) {
  const std::string yaml =
      "# the map\n"
      "tables:\n"
      "  users: {key: id, router: by_user}   # users\n"
      "  orders:\n"
      "    key: user_id\n"
      "    router: 'by_user'  # orders\n"
      "  notes: {key: \"id\", router: \"by_user\"}\n";
  Node root = Parse(yaml);
  const Node* tables = root.Find("tables");
  YamlEditor editor(yaml);
  for (const char* t : {"users", "orders", "notes"}) {
    ASSERT_TRUE(editor.ReplaceScalar(*tables->Find(t)->Find("router"), "p").ok()) << t;
  }
  EXPECT_EQ(Apply(editor),
            "# the map\n"
            "tables:\n"
            "  users: {key: id, router: p}   # users\n"
            "  orders:\n"
            "    key: user_id\n"
            "    router: p  # orders\n"
            "  notes: {key: \"id\", router: p}\n");
}

TEST(YamlEditorTest, AddsEntriesToFlowMaps) {
  const std::string yaml =
      "a: {x: 1}\n"
      "b: { x: 1 }\n"
      "c: {}\n"
      "d: {\n"
      "  x: 1}\n";
  Node root = Parse(yaml);
  YamlEditor editor(yaml);
  for (const char* m : {"a", "b", "c", "d"}) {
    ASSERT_TRUE(editor.AddEntry(*root.Find(m), "k", "v").ok()) << m;
  }
  const std::string out = Apply(editor);
  EXPECT_EQ(out,
            "a: {k: v, x: 1}\n"
            "b: { k: v, x: 1 }\n"
            "c: {k: v}\n"
            "d: {\n"
            "  k: v, x: 1}\n");
  Node again = Parse(out);
  for (const char* m : {"a", "b", "c", "d"}) EXPECT_EQ(again.Find(m)->Find("k")->scalar, "v") << m;
}

TEST(YamlEditorTest, AddsALineBeforeTheFirstKeyOfABlockMapKeepingComments) {
  const std::string yaml =
      "routers:\n"
      "    # the ring\n"
      "    ring: {type: hash_ring, shards: [s0, s1]}\n"
      "    r: {type: modulo, shards: [s0, s1]}  # legacy\n"
      "tables: {}\n";
  Node root = Parse(yaml);
  YamlEditor editor(yaml);
  ASSERT_TRUE(editor.AddEntry(*root.Find("routers"), "pinned", "{type: directory}").ok());
  EXPECT_EQ(Apply(editor),
            "routers:\n"
            "    # the ring\n"
            "    pinned: {type: directory}\n"
            "    ring: {type: hash_ring, shards: [s0, s1]}\n"
            "    r: {type: modulo, shards: [s0, s1]}  # legacy\n"
            "tables: {}\n");
}

TEST(YamlEditorTest, KeepsCrLfLineEndings) {
  const std::string yaml = "m:\r\n  a: 1\r\n";
  YamlEditor editor(yaml);
  ASSERT_TRUE(editor.AddEntry(*Parse(yaml).Find("m"), "b", "2").ok());
  EXPECT_EQ(Apply(editor), "m:\r\n  b: 2\r\n  a: 1\r\n");
}

TEST(YamlEditorTest, ColumnsAfterMultiByteCharactersOnTheLine) {
  const std::string yaml = "t: {note: \"héllo wörld\", router: r}\n";
  Node root = Parse(yaml);
  YamlEditor editor(yaml);
  absl::Status st = editor.ReplaceScalar(*root.Find("t")->Find("router"), "p");
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(Apply(editor), "t: {note: \"héllo wörld\", router: p}\n");
}

TEST(YamlEditorTest, RefusesWhatItCannotEditInPlace) {
  const std::string yaml =
      "base: &b by_user\n"
      "t: {router: *b}\n"
      "u: {router: \"by_\\x75ser\"}\n"
      "list: [1, 2]\n";
  auto root = ParseYaml(yaml, "edit.yaml");
  ASSERT_TRUE(root.ok()) << root.status();
  YamlEditor editor(yaml);
  // An alias: its node's position is the anchor's, which holds "&b by_user".
  absl::Status alias = editor.ReplaceScalar(*root->Find("t")->Find("router"), "p");
  // An escaped quoted scalar is not the text as read.
  absl::Status escaped = editor.ReplaceScalar(*root->Find("u")->Find("router"), "p");
  EXPECT_EQ(escaped.code(), absl::StatusCode::kFailedPrecondition) << escaped;
  EXPECT_THAT(std::string(escaped.message()), HasSubstr("edit.yaml:3:"));
  EXPECT_EQ(editor.AddEntry(*root->Find("list"), "k", "v").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(editor.ReplaceScalar(*root->Find("list"), "v").code(),
            absl::StatusCode::kFailedPrecondition);
  if (alias.ok()) {
    // Replacing through an alias would edit the anchor's value: the result must still say so.
    auto out = editor.Result();
    ASSERT_TRUE(out.ok());
    EXPECT_THAT(*out, HasSubstr("router: *b"));
  }
}

TEST(YamlEditorTest, OverlappingEditsAreRefused) {
  const std::string yaml = "a: x\n";
  Node root = Parse(yaml);
  YamlEditor editor(yaml);
  ASSERT_TRUE(editor.ReplaceScalar(*root.Find("a"), "y").ok());
  ASSERT_TRUE(editor.ReplaceScalar(*root.Find("a"), "z").ok());
  EXPECT_EQ(editor.Result().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace shardgate::conf
