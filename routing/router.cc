// MakeRouter (registry lookup) and the settings helpers every router uses to validate its YAML.
#include "routing/router.h"

#include <algorithm>
#include <charconv>

#include "routing/text_util.h"

namespace shardgate::routing {

absl::StatusOr<int> RouterContext::ShardAt(const conf::Node& name_node,
                                           std::string_view what) const {
  if (name_node.kind != conf::Node::Kind::kScalar || name_node.scalar.empty()) {
    return conf::ErrorAt(name_node.mark, Cat(what, ": expected a shard name"));
  }
  auto it = shard_index.find(name_node.scalar);
  if (it != shard_index.end()) return it->second;
  std::string known;
  for (const auto& [name, index] : shard_index) known += (known.empty() ? "" : ", ") + name;
  return conf::ErrorAt(name_node.mark, Cat(what, ": unknown shard '", name_node.scalar,
                                           "' (shards: ", known, ")"));
}

absl::StatusOr<std::unique_ptr<Router>> MakeRouter(const conf::RouterConfig& config,
                                                   const RouterContext& context) {
  std::string known;
  for (const RouterType& t : RouterTypes()) {
    if (t.name == config.type) return t.factory(config, context);
    known += Cat(known.empty() ? "" : ", ", t.name);
  }
  const conf::Node* type = config.settings.Find("type");
  return conf::ErrorAt(type != nullptr ? type->mark : config.mark,
                       Cat("router '", config.name, "': unknown type '", config.type,
                           "' (types: ", known, ")"));
}

namespace router_settings {

absl::Status CheckKeys(const conf::Node& settings, std::string_view router,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : settings.map) {
    if (key == "type" || std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
      continue;
    }
    auto mark = settings.key_marks.find(key);
    std::string list;
    for (std::string_view a : allowed) list += Cat(list.empty() ? "" : ", ", a);
    return conf::ErrorAt(mark != settings.key_marks.end() ? mark->second : value.mark,
                         Cat("router '", router, "': unknown key '", key, "' (allowed: type, ",
                             list, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyType> KeyTypeSetting(const conf::Node& settings, KeyType fallback) {
  const conf::Node* n = settings.Find("key_type");
  if (n == nullptr) return fallback;
  std::optional<KeyType> t =
      n->kind == conf::Node::Kind::kScalar ? KeyTypeFromName(n->scalar) : std::nullopt;
  if (!t) {
    return conf::ErrorAt(n->mark, "key_type must be one of integer, bigint, int, text, varchar, uuid");
  }
  return *t;
}

absl::StatusOr<int64_t> IntValue(const conf::Node& node, std::string_view what) {
  int64_t v = 0;
  const std::string& s = node.scalar;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (node.kind != conf::Node::Kind::kScalar || s.empty() || ec != std::errc() ||
      end != s.data() + s.size() || v < 0) {
    return conf::ErrorAt(node.mark, Cat(what, " must be a non-negative integer"));
  }
  return v;
}

absl::StatusOr<std::vector<int>> ShardList(const conf::Node& settings, const RouterContext& ctx,
                                           std::string_view router) {
  std::vector<int> out;
  const conf::Node* list = settings.Find("shards");
  if (list == nullptr) {
    for (const auto& [name, index] : ctx.shard_index) out.push_back(index);
    std::sort(out.begin(), out.end());
    if (out.empty()) return conf::ErrorAt(settings.mark, Cat("router '", router, "': no shards"));
    return out;
  }
  if (list->kind != conf::Node::Kind::kList || list->list.empty()) {
    return conf::ErrorAt(list->mark, Cat("router '", router, "': shards must be a non-empty list"));
  }
  for (const conf::Node& item : list->list) {
    auto index = ctx.ShardAt(item, Cat("router '", router, "'"));
    if (!index.ok()) return index.status();
    if (std::find(out.begin(), out.end(), *index) != out.end()) {
      return conf::ErrorAt(item.mark, Cat("router '", router, "': shard '", item.scalar,
                                          "' listed twice"));
    }
    out.push_back(*index);
  }
  return out;
}

}  // namespace router_settings
}  // namespace shardgate::routing
