// The YAML-free configuration tree: marks, positioned errors, lookup, and the conversion from
// YAML text. The only file in shardgate that includes yaml-cpp; every yaml-cpp exception is
// caught here and becomes a Status.
#include "conf/node.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "conf/reader.h"

namespace shardgate::conf {

std::string Mark::ToString() const { return absl::StrCat(file, ":", line, ":", column); }

absl::Status ErrorAt(const Mark& mark, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(mark.ToString(), ": ", internal::Av(what)));
}

const Node* Node::Find(std::string_view key) const {
  if (kind != Kind::kMap) return nullptr;
  // std::map<std::string, Node> has no heterogeneous lookup (std::less<void> is not its
  // comparator), so one key copy per lookup; this runs at load time only.
  auto it = map.find(std::string(key));
  return it == map.end() ? nullptr : &it->second;
}

namespace {

// yaml-cpp resolves aliases by sharing nodes, and registers an anchor before its contents, so
// `&a [*a]` is a cycle and nested aliases expand exponentially ("billion laughs"). Both bounds
// keep a hostile or mistaken file from exhausting the stack or memory.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 1u << 18;

class Converter {
 public:
  Converter(const std::string& file, internal::Problems& problems)
      : file_(file), problems_(problems) {}

  Node Convert(const YAML::Node& in, const Mark& fallback, int depth) {
    Node out;
    out.mark = MarkOf(in.Mark(), fallback);
    if (++nodes_ > kMaxNodes) {
      if (!too_many_reported_) {
        problems_.Add(out.mark, "too many values (more than 262144; recursive aliases?)");
        too_many_reported_ = true;
      }
      return out;
    }
    if (depth > kMaxDepth) {
      problems_.Add(out.mark, absl::StrCat("nesting deeper than ", kMaxDepth,
                                           " levels (recursive aliases?)"));
      return out;
    }
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = Node::Kind::kNull;
        break;
      case YAML::NodeType::Scalar:
        out.kind = Node::Kind::kScalar;
        out.scalar = in.Scalar();
        break;
      case YAML::NodeType::Sequence:
        out.kind = Node::Kind::kList;
        for (const auto& item : in) out.list.push_back(Convert(item, out.mark, depth + 1));
        break;
      case YAML::NodeType::Map:
        out.kind = Node::Kind::kMap;
        for (const auto& entry : in) {
          const YAML::Node& key = entry.first;
          Mark key_mark = MarkOf(key.Mark(), out.mark);
          if (!key.IsScalar()) {
            problems_.Add(key_mark, "a map key must be a plain string");
            continue;
          }
          const std::string& name = key.Scalar();
          auto [it, inserted] = out.key_marks.emplace(name, key_mark);
          if (!inserted) {
            problems_.Add(key_mark, absl::StrCat("duplicate key '", name, "' (first at line ",
                                                 it->second.line, ")"));
            continue;
          }
          out.map.emplace(name, Convert(entry.second, key_mark, depth + 1));
        }
        break;
    }
    return out;
  }

 private:
  Mark MarkOf(const YAML::Mark& mark, const Mark& fallback) const {
    // Nodes yaml-cpp synthesizes (e.g. the null of `key:`) may carry null_mark (-1).
    if (mark.line < 0 || mark.column < 0) return fallback;
    return Mark{file_, mark.line + 1, mark.column + 1};
  }

  const std::string& file_;
  internal::Problems& problems_;
  size_t nodes_ = 0;
  bool too_many_reported_ = false;
};

}  // namespace

// Counts the documents of a YAML text with yaml-cpp's event parser, up to two, and where the
// second one's content begins. LoadAll is not used for that: yaml-cpp 0.7 (Debian 12) never ends
// it on a stray ',' outside a flow collection (", b:"), returning empty documents forever while
// its memory grows (found by tests/fuzz/yaml_fuzz.cc).
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents = 0;
  YAML::Mark second;  // the second document's first node (or its start)
  bool second_has_node = false;

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& mark) {
    if (documents == 2 && !second_has_node) {
      second_has_node = true;
      second = mark;
    }
  }
};

absl::StatusOr<Node> ParseYaml(std::string_view yaml, const std::string& file) {
  internal::Problems problems;
  Node root;
  root.mark = Mark{file, 1, 1};  // an empty file has no document, but errors still need a place
  try {
    // Load alone silently ignores every document after the first, and a stray "---" would then
    // drop half a configuration without a word: count them first (DocumentCounter).
    const std::string text(yaml);
    DocumentCounter counter;
    {
      std::istringstream in(text);
      YAML::Parser parser(in);
      while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
      }
    }
    if (counter.documents > 1) {
      problems.Add(Mark{file, counter.second.line + 1, counter.second.column + 1},
                   counter.second_has_node
                       ? "only one YAML document is allowed (a second begins here)"
                       : "unexpected text after the document (a stray ',' outside [ ] or { }?)");
    } else if (counter.documents == 1) {
      Converter converter(file, problems);
      root = converter.Convert(YAML::Load(text), Mark{file, 1, 1}, 0);
    }
  } catch (const YAML::Exception& e) {
    Mark mark{file, e.mark.line < 0 ? 1 : e.mark.line + 1,
              e.mark.column < 0 ? 1 : e.mark.column + 1};
    problems.Add(mark, e.msg.empty() ? std::string("invalid YAML") : e.msg);
  } catch (const std::exception& e) {
    problems.Add(Mark{file, 1, 1}, absl::StrCat("cannot parse YAML: ", e.what()));
  } catch (...) {
    problems.Add(Mark{file, 1, 1}, "cannot parse YAML");
  }
  if (!problems.empty()) return problems.ToStatus();
  return root;
}

}  // namespace shardgate::conf
