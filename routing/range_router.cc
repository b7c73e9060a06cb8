// `range`: sorted, non-overlapping [from, to) ranges, each owned by a shard; the first range may
// be open below and the last open above; binary search per key. Integer or text keys (text
// compares bytewise, as PostgreSQL's C collation does). A key in a gap goes to `default:` or is
// an error.
#include <algorithm>
#include <optional>

#include "protocol/status.h"
#include "routing/router.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

struct Range {
  std::optional<KeyValue> from;  // nullopt = unbounded below
  std::optional<KeyValue> to;    // nullopt = unbounded above (exclusive bound otherwise)
  int shard = 0;
};

class RangeRouter final : public Router {
 public:
  RangeRouter(std::string name, KeyType key_type, std::vector<Range> ranges,
              std::optional<int> default_shard)
      : Router(std::move(name), "range", key_type), ranges_(std::move(ranges)),
        default_(default_shard) {
    for (const Range& r : ranges_) shards_.push_back(r.shard);
    if (default_) shards_.push_back(*default_);
    std::sort(shards_.begin(), shards_.end());
    shards_.erase(std::unique(shards_.begin(), shards_.end()), shards_.end());
  }

  absl::StatusOr<int> Route(const KeyValue& key) const override {
    // The last range whose lower bound is <= key.
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), key,
                               [](const KeyValue& k, const Range& r) {
                                 return r.from.has_value() && k < *r.from;
                               });
    if (it != ranges_.begin()) {
      const Range& r = *std::prev(it);
      if (!r.to || key < *r.to) return r.shard;
    }
    if (default_) return *default_;
    return PgStatus("22023", Cat("no range of router '", name(), "' holds key ", key.ToString()),
                    "add a range for it or a default: shard");
  }

  const std::vector<int>& Shards() const override { return shards_; }

  std::string Describe() const override {
    return Cat("range(", ranges_.size(), " ranges, ", KeyTypeName(key_type()), " key)");
  }

  absl::StatusOr<std::string> OwnerSql(std::string_view key_sql,
                                       const std::vector<std::string>& shard_names) const override {
    // Ranges do not overlap, so "the last range starting at or below the key, if it holds the
    // key" is "the range holding the key". Text keys compare under COLLATE "C" (bytewise).
    std::string key = owner_sql::Key(key_sql, key_type());
    std::string sql = "CASE";
    for (const Range& r : ranges_) {
      std::string lower = r.from ? Cat(key, " >= ", owner_sql::Literal(*r.from)) : "";
      std::string upper = r.to ? Cat(key, " < ", owner_sql::Literal(*r.to)) : "";
      std::string both = lower.empty() || upper.empty() ? lower + upper : lower + " AND " + upper;
      if (both.empty()) both = Cat(key, " IS NOT NULL");  // a single range over every key
      ASSIGN_OR_RETURN(std::string name, owner_sql::ShardName(shard_names, r.shard));
      sql += Cat(" WHEN ", both, " THEN ", name);
    }
    if (default_) {
      ASSIGN_OR_RETURN(std::string name, owner_sql::ShardName(shard_names, *default_));
      sql += Cat(" ELSE ", owner_sql::UnlessNull(key, name));
    }
    return sql + " END";  // no default: a key in a gap is Route's error, NULL here
  }

 private:
  std::vector<Range> ranges_;  // sorted by `from`, non-overlapping
  std::optional<int> default_;
  std::vector<int> shards_;
};

bool LooksInteger(const conf::Node& n) {
  if (n.kind != conf::Node::Kind::kScalar) return false;
  return ParseKeyText(n.scalar, KeyType::kInt).ok();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Router>> MakeRangeRouter(const conf::RouterConfig& config,
                                                        const RouterContext& ctx) {
  const conf::Node& s = config.settings;
  const std::string& rname = config.name;
  RETURN_IF_ERROR(router_settings::CheckKeys(s, rname, {"ranges", "default", "key_type"}));
  const conf::Node* list = s.Find("ranges");
  if (list == nullptr || list->kind != conf::Node::Kind::kList || list->list.empty()) {
    return conf::ErrorAt(list != nullptr ? list->mark : config.mark,
                         Cat("router '", rname, "': ranges must be a non-empty list"));
  }
  // Key type: declared, or integer when every bound is an integer, else text.
  bool all_int = true;
  for (const conf::Node& item : list->list) {
    for (const char* k : {"from", "to"}) {
      if (const conf::Node* b = item.Find(k)) all_int = all_int && LooksInteger(*b);
    }
  }
  ASSIGN_OR_RETURN(KeyType key_type,
                   router_settings::KeyTypeSetting(s, all_int ? KeyType::kInt : KeyType::kText));
  std::vector<Range> ranges;
  std::optional<KeyValue> previous_to;
  bool open_above_seen = false;
  for (size_t i = 0; i < list->list.size(); ++i) {
    const conf::Node& item = list->list[i];
    std::string what = Cat("router '", rname, "' range ", i + 1);
    if (item.kind != conf::Node::Kind::kMap) {
      return conf::ErrorAt(item.mark, Cat(what, ": expected {from, to, shard}"));
    }
    for (const auto& [key, value] : item.map) {
      if (key != "from" && key != "to" && key != "shard") {
        return conf::ErrorAt(item.key_marks.count(key) ? item.key_marks.at(key) : value.mark,
                             Cat(what, ": unknown key '", key, "' (allowed: from, to, shard)"));
      }
    }
    if (open_above_seen) {
      return conf::ErrorAt(item.mark, Cat(what, ": follows a range open above (no 'to'), so "
                                                "it overlaps it"));
    }
    Range r;
    const conf::Node* shard = item.Find("shard");
    if (shard == nullptr) return conf::ErrorAt(item.mark, Cat(what, ": missing 'shard'"));
    ASSIGN_OR_RETURN(r.shard, ctx.ShardAt(*shard, what));
    auto bound = [&](const char* k) -> absl::StatusOr<std::optional<KeyValue>> {
      const conf::Node* b = item.Find(k);
      if (b == nullptr) return std::optional<KeyValue>();
      if (b->kind != conf::Node::Kind::kScalar) {
        return conf::ErrorAt(b->mark, Cat(what, ": '", k, "' must be a value"));
      }
      auto v = ParseKeyText(b->scalar, key_type);
      if (!v.ok()) {
        return conf::ErrorAt(b->mark, Cat(what, ": '", k, "' is not a valid ",
                                          KeyTypeName(key_type), " key"));
      }
      return std::optional<KeyValue>(*v);
    };
    ASSIGN_OR_RETURN(r.from, bound("from"));
    ASSIGN_OR_RETURN(r.to, bound("to"));
    if (!r.from) r.from = previous_to;  // contiguous with the previous range
    if (r.from && r.to && !(*r.from < *r.to)) {
      return conf::ErrorAt(item.mark, Cat(what, ": 'from' must be below 'to'"));
    }
    if (i > 0 && r.from && previous_to && *r.from < *previous_to) {
      return conf::ErrorAt(item.Find("from") ? item.Find("from")->mark : item.mark,
                           Cat(what, " overlaps range ", i, " (ranges must be sorted and "
                                                          "must not overlap)"));
    }
    if (i > 0 && !r.from) {
      return conf::ErrorAt(item.mark, Cat(what, ": only the first range may be open below"));
    }
    if (!r.to) open_above_seen = true;
    previous_to = r.to;
    ranges.push_back(std::move(r));
  }
  std::optional<int> default_shard;
  if (const conf::Node* d = s.Find("default")) {
    ASSIGN_OR_RETURN(int idx, ctx.ShardAt(*d, Cat("router '", rname, "' default")));
    default_shard = idx;
  }
  return std::unique_ptr<Router>(
      std::make_unique<RangeRouter>(rname, key_type, std::move(ranges), default_shard));
}

}  // namespace shardgate::routing
