// MakeRouter (registry lookup) and the settings helpers every router uses to validate its YAML.
#include "routing/router.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "protocol/status.h"
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

namespace owner_sql {

std::string Key(std::string_view key_sql, KeyType type) {
  switch (type) {
    case KeyType::kInt: return Cat("((", key_sql, ")::int8)");
    case KeyType::kText: return Cat("((", key_sql, ")::text COLLATE \"C\")");
    case KeyType::kUuid: return Cat("((", key_sql, ")::uuid)");
  }
  return std::string(key_sql);
}

std::string Literal(std::string_view text) {
  // An E'' literal when there is a backslash, so standard_conforming_strings cannot change it.
  bool escape = text.find('\\') != std::string_view::npos;
  std::string out = escape ? "E'" : "'";
  for (char c : text) {
    if (c == '\'' || (escape && c == '\\')) out.push_back(c);
    out.push_back(c);
  }
  return out + "'";
}

std::string Literal(const KeyValue& key) {
  switch (key.type()) {
    case KeyType::kInt:
      // -9223372036854775808 would lex as a numeric; compare int8 with int8.
      if (key.int_value() == std::numeric_limits<int64_t>::min()) {
        return "(-9223372036854775807 - 1)";
      }
      return Cat(key.int_value());
    case KeyType::kText: return Literal(key.bytes());
    case KeyType::kUuid: return Cat(Literal(key.ToString()), "::uuid");
  }
  return "NULL";
}

absl::StatusOr<std::string> ShardName(const std::vector<std::string>& shard_names, int shard) {
  if (shard < 0 || static_cast<size_t>(shard) >= shard_names.size()) {
    return PgStatus("22023", Cat("no name given for shard ", shard, " (", shard_names.size(),
                                 " names)"));
  }
  return Literal(shard_names[shard]);
}

absl::StatusOr<std::string> NameArray(const std::vector<std::string>& shard_names,
                                      const std::vector<int>& shards) {
  std::string out = "ARRAY[";
  for (size_t i = 0; i < shards.size(); ++i) {
    ASSIGN_OR_RETURN(std::string name, ShardName(shard_names, shards[i]));
    out += Cat(i ? ", " : "", name);
  }
  return out + "]::text[]";
}

std::string UnlessNull(std::string_view key, std::string_view value) {
  return Cat("CASE WHEN ", key, " IS NOT NULL THEN ", value, " END");
}

}  // namespace owner_sql
}  // namespace shardgate::routing
