// `hash_ring`: consistent hashing. Each shard owns `vnodes x weight` points on a 64-bit ring;
// a key belongs to the first point at or after its PostgreSQL partition hash. Adding a shard
// only takes keys from the others (none move between old shards), so resharding moves about
// 1/(N+1) of the keys.
#include <algorithm>

#include "protocol/status.h"
#include "routing/pg_hash.h"
#include "routing/router.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

constexpr int64_t kDefaultVnodes = 256;
constexpr int64_t kMaxPoints = 1 << 22;  // bounds memory for absurd vnodes x weight

class HashRingRouter final : public Router {
 public:
  HashRingRouter(std::string name, KeyType key_type, std::vector<std::pair<uint64_t, int>> ring,
                 std::vector<int> shards, int64_t vnodes)
      : Router(std::move(name), "hash_ring", key_type), ring_(std::move(ring)),
        shards_(std::move(shards)), vnodes_(vnodes) {}

  absl::StatusOr<int> Route(const KeyValue& key) const override {
    uint64_t h = PartitionHash(key);
    auto it = std::lower_bound(ring_.begin(), ring_.end(), h,
                               [](const std::pair<uint64_t, int>& p, uint64_t v) {
                                 return p.first < v;
                               });
    if (it == ring_.end()) it = ring_.begin();  // wrap around
    return it->second;
  }

  const std::vector<int>& Shards() const override { return shards_; }

  std::string Describe() const override {
    return Cat("hash_ring(", shards_.size(), " shards, ", vnodes_, " vnodes, ",
               KeyTypeName(key_type()), " key)");
  }

  absl::StatusOr<std::string> OwnerSql(std::string_view key_sql,
                                       const std::vector<std::string>& shard_names) const override {
    // lower_bound(h) over integers is the count of points < h, i.e. of points <= h - 1, which
    // is what width_bucket returns (a binary search; equal points are fine, and the first of
    // a tie is the one lower_bound takes). A count of ring size wraps to point 0.
    std::string points = "'{";
    std::vector<int> owners;
    owners.reserve(ring_.size());
    for (const auto& [point, shard] : ring_) {
      points += Cat(owners.empty() ? "" : ",", point);
      owners.push_back(shard);
    }
    points += "}'::numeric[]";
    ASSIGN_OR_RETURN(std::string names, owner_sql::NameArray(shard_names, owners));
    std::string h = PartitionHashSql(owner_sql::Key(key_sql, key_type()), key_type());
    return Cat("(", names, ")[width_bucket(", h, " - 1, ", points, ") % ", ring_.size(), " + 1]");
  }

 private:
  std::vector<std::pair<uint64_t, int>> ring_;  // sorted by point
  std::vector<int> shards_;
  int64_t vnodes_;
};

}  // namespace

// A shard's points depend only on its name and the point number, so they stay put when other
// shards come and go.
uint64_t HashRingPoint(std::string_view shard_name, int64_t i) {
  return HashBytesExtended(Cat(shard_name, "#", i), kHashPartitionSeed);
}

absl::StatusOr<std::unique_ptr<Router>> MakeHashRingRouter(const conf::RouterConfig& config,
                                                           const RouterContext& ctx) {
  const conf::Node& s = config.settings;
  const std::string& rname = config.name;
  RETURN_IF_ERROR(router_settings::CheckKeys(s, rname, {"shards", "vnodes", "weights",
                                                        "key_type"}));
  ASSIGN_OR_RETURN(KeyType key_type, router_settings::KeyTypeSetting(s, KeyType::kInt));
  ASSIGN_OR_RETURN(std::vector<int> shards, router_settings::ShardList(s, ctx, rname));
  int64_t vnodes = kDefaultVnodes;
  if (const conf::Node* v = s.Find("vnodes")) {
    ASSIGN_OR_RETURN(vnodes, router_settings::IntValue(*v, "vnodes"));
    if (vnodes < 1) return conf::ErrorAt(v->mark, "vnodes must be at least 1");
  }
  std::map<int, int64_t> weight;
  for (int sh : shards) weight[sh] = 1;
  if (const conf::Node* w = s.Find("weights")) {
    if (w->kind != conf::Node::Kind::kMap) {
      return conf::ErrorAt(w->mark, Cat("router '", rname, "': weights must be {shard: n}"));
    }
    for (const auto& [name, value] : w->map) {
      auto mark_it = w->key_marks.find(name);
      const conf::Mark& mark = mark_it != w->key_marks.end() ? mark_it->second : value.mark;
      auto it = ctx.shard_index.find(name);
      if (it == ctx.shard_index.end() || !weight.count(it->second)) {
        return conf::ErrorAt(mark, Cat("router '", rname, "': weight for '", name,
                                       "', which is not one of its shards"));
      }
      ASSIGN_OR_RETURN(int64_t n, router_settings::IntValue(value, "a weight"));
      if (n < 1) return conf::ErrorAt(value.mark, "a weight must be at least 1");
      weight[it->second] = n;
    }
  }
  std::vector<std::string> names(ctx.shard_index.size());
  for (const auto& [name, index] : ctx.shard_index) {
    if (index >= 0 && static_cast<size_t>(index) < names.size()) names[index] = name;
  }
  int64_t total = 0;
  for (const auto& [sh, w] : weight) total += w * vnodes;
  if (total > kMaxPoints) {
    return conf::ErrorAt(config.mark, Cat("router '", rname, "': vnodes x weights is ", total,
                                          " points, more than ", kMaxPoints));
  }
  std::vector<std::pair<uint64_t, int>> ring;
  ring.reserve(total);
  for (int sh : shards) {
    for (int64_t i = 0; i < weight[sh] * vnodes; ++i) {
      ring.emplace_back(HashRingPoint(names[sh], i), sh);
    }
  }
  // Ties (astronomically rare) are broken by shard index so the ring is deterministic.
  std::sort(ring.begin(), ring.end());
  std::sort(shards.begin(), shards.end());
  return std::unique_ptr<Router>(std::make_unique<HashRingRouter>(rname, key_type,
                                                                  std::move(ring),
                                                                  std::move(shards), vnodes));
}

}  // namespace shardgate::routing
