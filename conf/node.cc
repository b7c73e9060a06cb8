// The YAML-free configuration tree: marks, positioned errors, lookup, and the conversion from
// YAML text. The only file in shardgate that includes yaml-cpp; every yaml-cpp exception is
// caught here and becomes a Status.
#include "conf/node.h"

#include <yaml-cpp/yaml.h>

#include <exception>
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

absl::StatusOr<Node> ParseYaml(std::string_view yaml, const std::string& file) {
  internal::Problems problems;
  Node root;
  root.mark = Mark{file, 1, 1};  // an empty file has no document, but errors still need a place
  try {
    // LoadAll, not Load: Load silently ignores every document after the first, and a stray
    // "---" would then drop half a configuration without a word.
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(yaml));
    Converter converter(file, problems);
    if (!docs.empty()) root = converter.Convert(docs[0], Mark{file, 1, 1}, 0);
    for (size_t i = 1; i < docs.size(); ++i) {
      Node extra = converter.Convert(docs[i], Mark{file, 1, 1}, 0);
      problems.Add(extra.mark, "only one YAML document is allowed (a second begins here)");
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
