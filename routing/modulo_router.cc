// `modulo`: shard = shards[hash(key) % n] with PostgreSQL's partition hash (hash: postgres, the
// default, so shard i holds exactly the rows of hash partition (MODULUS n, REMAINDER i)), or
// shards[key mod n] on the raw integer (hash: none, the textbook scheme).
#include <algorithm>

#include "protocol/status.h"
#include "routing/pg_hash.h"
#include "routing/router.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

class ModuloRouter final : public Router {
 public:
  ModuloRouter(std::string name, KeyType key_type, bool pg_hash, std::vector<int> shards)
      : Router(std::move(name), "modulo", key_type), pg_hash_(pg_hash), order_(shards),
        sorted_(std::move(shards)) {
    std::sort(sorted_.begin(), sorted_.end());
  }

  absl::StatusOr<int> Route(const KeyValue& key) const override {
    uint64_t n = order_.size();
    if (pg_hash_) return order_[PartitionRemainder(key, n)];
    if (key.type() != KeyType::kInt) {
      return PgStatus("22023", Cat("router '", name(), "' (hash: none) needs an integer key"));
    }
    // The mathematical (non-negative) remainder, so -1 goes to the last shard.
    int64_t v = key.int_value();
    int64_t m = static_cast<int64_t>(n);
    int64_t r = v % m;
    if (r < 0) r += m;
    return order_[static_cast<size_t>(r)];
  }

  const std::vector<int>& Shards() const override { return sorted_; }

  std::string Describe() const override {
    return Cat("modulo(hash=", pg_hash_ ? "postgres" : "none", ", ", order_.size(), " shards, ",
               KeyTypeName(key_type()), " key)");
  }

  absl::StatusOr<std::string> OwnerSql(std::string_view key_sql,
                                       const std::vector<std::string>& shard_names) const override {
    ASSIGN_OR_RETURN(std::string names, owner_sql::NameArray(shard_names, order_));
    std::string key = owner_sql::Key(key_sql, key_type());
    size_t n = order_.size();
    // As Route: the partition hash's remainder, or the raw integer's non-negative remainder
    // (int8 % keeps the dividend's sign; adding n first cannot overflow as |k % n| < n).
    std::string remainder = pg_hash_ ? Cat("mod(", PartitionHashSql(key, key_type()), ", ", n, ")")
                                     : Cat("(", key, " % ", n, " + ", n, ") % ", n);
    return Cat("(", names, ")[(", remainder, ")::int4 + 1]");
  }

 private:
  bool pg_hash_;
  std::vector<int> order_;   // remainder -> shard, in `shards:` order
  std::vector<int> sorted_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Router>> MakeModuloRouter(const conf::RouterConfig& config,
                                                         const RouterContext& ctx) {
  const conf::Node& s = config.settings;
  RETURN_IF_ERROR(router_settings::CheckKeys(s, config.name, {"shards", "hash", "key_type"}));
  bool pg_hash = true;
  if (const conf::Node* h = s.Find("hash")) {
    if (h->scalar == "none") {
      pg_hash = false;
    } else if (h->scalar != "postgres") {
      return conf::ErrorAt(h->mark, Cat("router '", config.name,
                                        "': hash must be 'postgres' or 'none'"));
    }
  }
  ASSIGN_OR_RETURN(KeyType key_type, router_settings::KeyTypeSetting(s, KeyType::kInt));
  if (!pg_hash && key_type != KeyType::kInt) {
    const conf::Node* kt = s.Find("key_type");
    return conf::ErrorAt(kt != nullptr ? kt->mark : config.mark,
                         Cat("router '", config.name, "': hash: none needs an integer key_type"));
  }
  ASSIGN_OR_RETURN(std::vector<int> shards, router_settings::ShardList(s, ctx, config.name));
  return std::unique_ptr<Router>(
      std::make_unique<ModuloRouter>(config.name, key_type, pg_hash, std::move(shards)));
}

}  // namespace shardgate::routing
