// `directory`: an explicit key -> shard lookup, from inline `entries:` or from a table reached
// through a DirectoryStore with a bounded LRU cache in front. Unknown keys go to `default:`, or
// to the `fallback:` router (a directory of exceptions in front of a hash or range router: how
// a hot key gets a shard of its own), or are an error (22023), never to every shard.
#include <algorithm>
#include <cstdlib>
#include <list>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_split.h"
#include "protocol/status.h"
#include "routing/directory_store.h"
#include "routing/router.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

constexpr int64_t kDefaultCacheSize = 10000;

// A bounded LRU of key -> shard (-1 = "the store has no entry").
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  std::optional<int> Get(const KeyValue& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);  // most recently used
    return it->second->second;
  }
  void Put(const KeyValue& key, int shard) {
    if (capacity_ == 0) return;
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->second = shard;
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.emplace_front(key, shard);
    index_[key] = order_.begin();
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }
  void Erase(const KeyValue& key) {
    if (auto it = index_.find(key); it != index_.end()) {
      order_.erase(it->second);
      index_.erase(it);
    }
  }
  void Clear() {
    order_.clear();
    index_.clear();
  }
  size_t size() const { return order_.size(); }

 private:
  size_t capacity_;
  std::list<std::pair<KeyValue, int>> order_;
  absl::flat_hash_map<KeyValue, std::list<std::pair<KeyValue, int>>::iterator> index_;
};

}  // namespace

class DirectoryRouter final : public Router {
 public:
  DirectoryRouter(std::string name, KeyType key_type, absl::flat_hash_map<KeyValue, int> entries,
                  std::optional<int> default_shard, std::vector<int> shards,
                  std::shared_ptr<DirectoryStore> store, std::optional<DirectoryStoreSpec> spec,
                  std::map<std::string, int, std::less<>> shard_index, size_t cache_size,
                  const Router* fallback)
      : Router(std::move(name), "directory", key_type), entries_(std::move(entries)),
        default_(default_shard), shards_(std::move(shards)), store_(std::move(store)),
        spec_(std::move(spec)), shard_index_(std::move(shard_index)), cache_(cache_size),
        fallback_(fallback) {}

  absl::StatusOr<int> Route(const KeyValue& key) const override {
    if (auto it = entries_.find(key); it != entries_.end()) return it->second;
    if (spec_) {
      ASSIGN_OR_RETURN(int shard, FromStore(key));
      if (shard >= 0) return shard;
    }
    if (fallback_ != nullptr) return fallback_->Route(key);
    if (default_) return *default_;
    return PgStatus("22023", Cat("router '", name(), "' has no shard for key ", key.ToString()),
                    "add the key to the directory or give the router a default: shard");
  }

  const std::vector<int>& Shards() const override { return shards_; }

  std::string Describe() const override {
    return Cat("directory(", entries_.size(), " entries", spec_ ? ", store " + spec_->table : "",
               default_ ? ", default" : "",
               fallback_ != nullptr ? ", fallback " + fallback_->name() : "", ", ",
               KeyTypeName(key_type()), " key)");
  }

  absl::StatusOr<std::string> OwnerSql(std::string_view key_sql,
                                       const std::vector<std::string>& shard_names) const override {
    if (spec_) {
      return PgStatus("0A000",
                      "directory router with a store table: ownership is not expressible in SQL");
    }
    std::string key = owner_sql::Key(key_sql, key_type());
    std::string otherwise = "NULL::text";  // no default: an unknown key is Route's error
    if (fallback_ != nullptr) {
      ASSIGN_OR_RETURN(std::string routed, fallback_->OwnerSql(key_sql, shard_names));
      otherwise = Cat("(", routed, ")");
    } else if (default_) {
      ASSIGN_OR_RETURN(std::string name, owner_sql::ShardName(shard_names, *default_));
      otherwise = owner_sql::UnlessNull(key, name);
    }
    if (entries_.empty()) return otherwise;  // CASE needs at least one WHEN
    // Sorted so the same entries give the same text (the hash map has no order).
    std::vector<std::pair<KeyValue, int>> entries(entries_.begin(), entries_.end());
    std::sort(entries.begin(), entries.end());
    std::string sql = Cat("CASE ", key);
    for (const auto& [k, shard] : entries) {
      ASSIGN_OR_RETURN(std::string name, owner_sql::ShardName(shard_names, shard));
      sql += Cat(" WHEN ", owner_sql::Literal(k), " THEN ", name);
    }
    return Cat(sql, " ELSE ", otherwise, " END");
  }

  bool has_store() const { return spec_.has_value(); }
  void Invalidate() const {
    std::lock_guard lock(mu_);
    cache_.Clear();
    ++generation_;
  }
  void Invalidate(const KeyValue& key) const {
    std::lock_guard lock(mu_);
    cache_.Erase(key);
    ++generation_;
  }

 private:
  // -1 when the store has no entry for `key`.
  absl::StatusOr<int> FromStore(const KeyValue& key) const {
    {
      std::lock_guard lock(mu_);
      if (std::optional<int> hit = cache_.Get(key)) return *hit;
    }
    if (store_ == nullptr) return DirectoryMissStatus(*spec_, key);
    // The lookup runs without the lock: it may block, and a duplicate lookup is harmless.
    ASSIGN_OR_RETURN(std::optional<std::string> name, store_->Lookup(key));
    return Remember(key, name);
  }

 public:
  const std::optional<DirectoryStoreSpec>& spec() const { return spec_; }
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }
  // Caches the store's answer for `key`: the shard's index, or -1 when it is not listed. Not
  // cached when an invalidation came after `read_at` (a generation()): the answer may predate it.
  absl::StatusOr<int> Remember(const KeyValue& key, const std::optional<std::string>& name,
                               std::optional<uint64_t> read_at = std::nullopt) const {
    int shard = -1;
    if (name) {
      auto it = shard_index_.find(*name);
      if (it == shard_index_.end()) {
        return PgStatus("22023",
                        Cat("router '", this->name(), "' maps key ", key.ToString(),
                            " to unknown shard '", *name, "'"),
                        Cat("Fix the row in ", spec_ ? spec_->table : std::string("its table"),
                            ": the shards are those of the database's shards:."));
      }
      shard = it->second;
    }
    std::lock_guard lock(mu_);
    if (!read_at || *read_at == generation_) cache_.Put(key, shard);
    return shard;
  }

 private:
  absl::flat_hash_map<KeyValue, int> entries_;
  std::optional<int> default_;
  std::vector<int> shards_;
  std::shared_ptr<DirectoryStore> store_;
  std::optional<DirectoryStoreSpec> spec_;
  std::map<std::string, int, std::less<>> shard_index_;
  mutable std::mutex mu_;
  mutable LruCache cache_;
  mutable uint64_t generation_ = 0;  // bumped by every invalidation (guarded by mu_)
  const Router* fallback_;  // owned by the same ShardMap; null when none
};

void MemoryDirectoryStore::Set(const KeyValue& key, std::string shard) {
  std::lock_guard lock(mu_);
  entries_[key] = std::move(shard);
}
void MemoryDirectoryStore::Erase(const KeyValue& key) {
  std::lock_guard lock(mu_);
  entries_.erase(key);
}
absl::StatusOr<std::optional<std::string>> MemoryDirectoryStore::Lookup(const KeyValue& key) {
  std::lock_guard lock(mu_);
  ++lookups_;
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}
int MemoryDirectoryStore::lookups() const {
  std::lock_guard lock(mu_);
  return lookups_;
}

namespace {
constexpr char kMissPayload[] = "shardgate.directory_miss";

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}
}  // namespace

absl::Status DirectoryMissStatus(const DirectoryStoreSpec& spec, const KeyValue& key) {
  absl::Status st = PgStatus(
      "55000",
      Cat("key ", key.ToString(), " of directory router '", spec.router,
          "' is not cached: its shard is read from table ", spec.table, " on ", spec.shard),
      "shardgate reads the table when a statement needs the key; SHOW ROUTE answers from "
      "what it has read (shardctl route reads the table).");
  // router NUL type key: the key last, so it may hold any byte.
  st.SetPayload(kMissPayload, absl::Cord(Cat(spec.router, std::string(1, '\0'),
                                             std::to_string(static_cast<int>(key.type())),
                                             std::string(1, '\0'), key.ToString())));
  return st;
}

std::optional<DirectoryMiss> AsDirectoryMiss(const absl::Status& status) {
  auto payload = status.GetPayload(kMissPayload);
  if (!payload) return std::nullopt;
  const std::string text(*payload);
  const size_t a = text.find('\0');
  const size_t b = a == std::string::npos ? a : text.find('\0', a + 1);
  if (b == std::string::npos) return std::nullopt;
  const int type = std::atoi(text.substr(a + 1, b - a - 1).c_str());
  auto key = ParseKeyText(std::string_view(text).substr(b + 1), static_cast<KeyType>(type));
  if (!key.ok()) return std::nullopt;
  return DirectoryMiss{text.substr(0, a), *std::move(key)};
}

const DirectoryStoreSpec* DirectorySpecOf(const Router& router) {
  const auto* d = dynamic_cast<const DirectoryRouter*>(&router);
  return d != nullptr && d->spec() ? &*d->spec() : nullptr;
}

std::string DirectoryLookupSql(const DirectoryStoreSpec& spec, const KeyValue& key) {
  std::string table;
  for (absl::string_view part : absl::StrSplit(spec.table, '.')) {
    table += (table.empty() ? "" : ".") + QuoteIdent(std::string_view(part.data(), part.size()));
  }
  const std::string literal =
      key.type() == KeyType::kInt ? key.ToString() : owner_sql::Literal(key.ToString());
  return Cat("SELECT (", QuoteIdent(spec.shard_column), ")::text FROM ", table, " WHERE ",
             QuoteIdent(spec.key_column), " = ", literal, " LIMIT 1");
}

uint64_t DirectoryGeneration(const Router& router) {
  const auto* d = dynamic_cast<const DirectoryRouter*>(&router);
  return d != nullptr ? d->generation() : 0;
}

absl::Status PrimeDirectory(const Router& router, const KeyValue& key,
                            const std::optional<std::string>& shard,
                            std::optional<uint64_t> read_at) {
  const auto* d = dynamic_cast<const DirectoryRouter*>(&router);
  if (d == nullptr || !d->has_store()) {
    return PgStatus("55000", Cat("router '", router.name(), "' has no directory store"));
  }
  return d->Remember(key, shard, read_at).status();
}

bool InvalidateDirectory(const Router& router) {
  const auto* d = dynamic_cast<const DirectoryRouter*>(&router);
  if (d == nullptr || !d->has_store()) return false;
  d->Invalidate();
  return true;
}
bool InvalidateDirectory(const Router& router, const KeyValue& key) {
  const auto* d = dynamic_cast<const DirectoryRouter*>(&router);
  if (d == nullptr || !d->has_store()) return false;
  d->Invalidate(key);
  return true;
}

absl::StatusOr<std::unique_ptr<Router>> MakeDirectoryRouter(const conf::RouterConfig& config,
                                                            const RouterContext& ctx) {
  const conf::Node& s = config.settings;
  const std::string& rname = config.name;
  RETURN_IF_ERROR(router_settings::CheckKeys(
      s, rname, {"entries", "store", "default", "key_type", "cache_size", "shards", "fallback"}));
  const conf::Node* entries = s.Find("entries");
  const conf::Node* store = s.Find("store");
  if (entries == nullptr && store == nullptr) {
    return conf::ErrorAt(config.mark, Cat("router '", rname, "': needs entries: or store:"));
  }
  const Router* fallback = nullptr;
  if (const conf::Node* f = s.Find("fallback")) {
    if (s.Find("default") != nullptr || store != nullptr) {
      return conf::ErrorAt(f->mark, Cat("router '", rname, "': fallback: goes with entries: "
                                                           "only, not with default: or store:"));
    }
    if (f->kind != conf::Node::Kind::kScalar || f->scalar == rname) {
      return conf::ErrorAt(f->mark, Cat("router '", rname, "': fallback must name another "
                                                           "router"));
    }
    fallback = ctx.find_router ? ctx.find_router(f->scalar) : nullptr;
    if (fallback == nullptr) {
      return conf::ErrorAt(f->mark, Cat("router '", rname, "': fallback '", f->scalar,
                                        "' is not a router of this database without a "
                                        "fallback of its own"));
    }
  }
  if (entries != nullptr && entries->kind != conf::Node::Kind::kMap) {
    return conf::ErrorAt(entries->mark, Cat("router '", rname, "': entries must be a map "
                                                                "{key: shard}"));
  }
  bool all_int = entries != nullptr && !entries->map.empty();
  if (entries != nullptr) {
    for (const auto& [key, value] : entries->map) {
      all_int = all_int && ParseKeyText(key, KeyType::kInt).ok();
    }
  }
  // Keys are the fallback's type (entries must parse as such), else as written or declared.
  const KeyType inferred =
      fallback != nullptr ? fallback->key_type() : all_int ? KeyType::kInt : KeyType::kText;
  ASSIGN_OR_RETURN(KeyType key_type, router_settings::KeyTypeSetting(s, inferred));
  if (fallback != nullptr && key_type != fallback->key_type()) {
    return conf::ErrorAt(s.Find("key_type")->mark,
                         Cat("router '", rname, "': key_type ", KeyTypeName(key_type),
                             " differs from fallback '", fallback->name(), "' (",
                             KeyTypeName(fallback->key_type()), ")"));
  }
  absl::flat_hash_map<KeyValue, int> map;
  std::vector<int> shards;
  if (entries != nullptr) {
    for (const auto& [key, value] : entries->map) {
      auto mark_it = entries->key_marks.find(key);
      const conf::Mark& mark = mark_it != entries->key_marks.end() ? mark_it->second : value.mark;
      auto k = ParseKeyText(key, key_type);
      if (!k.ok()) {
        return conf::ErrorAt(mark, Cat("router '", rname, "': key '", key, "' is not a valid ",
                                       KeyTypeName(key_type), " key"));
      }
      ASSIGN_OR_RETURN(int shard, ctx.ShardAt(value, Cat("router '", rname, "' entry '", key,
                                                         "'")));
      if (!map.emplace(*k, shard).second) {
        return conf::ErrorAt(mark, Cat("router '", rname, "': key '", key,
                                       "' is listed twice (as written differently)"));
      }
      shards.push_back(shard);
    }
  }
  std::optional<int> default_shard;
  if (const conf::Node* d = s.Find("default")) {
    ASSIGN_OR_RETURN(int idx, ctx.ShardAt(*d, Cat("router '", rname, "' default")));
    default_shard = idx;
    shards.push_back(idx);
  }
  std::optional<DirectoryStoreSpec> spec;
  std::shared_ptr<DirectoryStore> store_impl;
  if (store != nullptr) {
    if (store->kind != conf::Node::Kind::kMap) {
      return conf::ErrorAt(store->mark, Cat("router '", rname, "': store must be a map"));
    }
    for (const auto& [key, value] : store->map) {
      if (key != "shard" && key != "table" && key != "key_column" && key != "shard_column") {
        return conf::ErrorAt(value.mark, Cat("router '", rname, "': unknown store key '", key,
                                             "' (allowed: shard, table, key_column, "
                                             "shard_column)"));
      }
    }
    DirectoryStoreSpec sp;
    sp.router = rname;
    sp.key_type = key_type;
    const conf::Node* shard = store->Find("shard");
    if (shard == nullptr) {
      return conf::ErrorAt(store->mark, Cat("router '", rname, "': store needs a shard"));
    }
    ASSIGN_OR_RETURN(sp.shard_index, ctx.ShardAt(*shard, Cat("router '", rname, "' store")));
    sp.shard = shard->scalar;
    if (const conf::Node* t = store->Find("table")) sp.table = t->scalar;
    if (const conf::Node* t = store->Find("key_column")) sp.key_column = t->scalar;
    if (const conf::Node* t = store->Find("shard_column")) sp.shard_column = t->scalar;
    // Any shard may come back from the table: an unrestricted statement goes to all of them.
    ASSIGN_OR_RETURN(std::vector<int> all, router_settings::ShardList(s, ctx, rname));
    shards.insert(shards.end(), all.begin(), all.end());
    if (ctx.directory_stores) {
      ASSIGN_OR_RETURN(store_impl, ctx.directory_stores(sp));
    }
    spec = std::move(sp);
  }
  int64_t cache_size = kDefaultCacheSize;
  if (const conf::Node* c = s.Find("cache_size")) {
    ASSIGN_OR_RETURN(cache_size, router_settings::IntValue(*c, "cache_size"));
  }
  if (fallback != nullptr) {
    shards.insert(shards.end(), fallback->Shards().begin(), fallback->Shards().end());
  }
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  if (shards.empty()) {
    return conf::ErrorAt(config.mark, Cat("router '", rname, "': routes to no shard"));
  }
  return std::unique_ptr<Router>(std::make_unique<DirectoryRouter>(
      rname, key_type, std::move(map), default_shard, std::move(shards), std::move(store_impl),
      std::move(spec), ctx.shard_index, static_cast<size_t>(cache_size), fallback));
}

}  // namespace shardgate::routing
