// ClientSession, query-cache half: which reads may be cached and under which key, answering a
// hit (simple protocol, or a Bind whose Describe/Execute follow), capturing a miss's answer as
// the pump forwards it, and the writes that invalidate entries. See proxy/query_cache.h.
#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/strings.h"
#include "proxy/worker.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

// A key as a tag: its type and its text, so that 42 and '42' of different key types differ.
std::string KeyTag(const routing::KeyValue& key) {
  const char type = key.type() == routing::KeyType::kInt    ? 'i'
                    : key.type() == routing::KeyType::kText ? 't'
                                                            : 'u';
  return absl::StrCat(absl::string_view(&type, 1), Av(key.ToString()));
}

uint32_t ReadLength(std::string_view message) {
  const auto* b = reinterpret_cast<const unsigned char*>(message.data() + 1);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

// The size of the whole message at the front of `bytes` (type byte included); 0 if cut short.
size_t MessageSize(std::string_view bytes) {
  if (bytes.size() < 5) return 0;
  const size_t size = size_t{ReadLength(bytes)} + 1;
  return size <= bytes.size() && size >= 5 ? size : 0;
}

}  // namespace

std::chrono::milliseconds ClientSession::CacheTtl(const routing::Analysis& analysis,
                                                  const routing::RoutePlan& plan,
                                                  std::optional<std::chrono::milliseconds> hint,
                                                  bool fan_out) const {
  using std::chrono::milliseconds;
  if (analysis.statements.size() != 1 || plan.write) return milliseconds(0);
  const routing::QueryInfo& info = analysis.statements[0];
  const bool spans = plan.spread == routing::RoutePlan::Spread::kSome ||
                     plan.spread == routing::RoutePlan::Spread::kAll;
  if (info.kind != routing::StatementKind::kSelect || info.write || (spans && !fan_out)) {
    return milliseconds(0);
  }
  if (hint) return *hint;
  milliseconds ttl(0);
  for (const routing::TableRef& ref : info.tables) {
    const routing::ShardMap::Table* table = topology_->map()->FindTable(ref.schema, ref.name);
    if (table == nullptr || table->cache.count() == 0) return milliseconds(0);
    ttl = ttl.count() == 0 ? table->cache : std::min(ttl, table->cache);
  }
  return ttl;
}

std::vector<CacheTag> ClientSession::CacheTags(const routing::Analysis& analysis,
                                               const routing::RoutePlan& plan, bool write) const {
  std::vector<CacheTag> tags;
  auto add = [&](CacheTag tag) {
    if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.push_back(std::move(tag));
  };
  for (const routing::QueryInfo& info : analysis.statements) {
    bool any_written = false;
    for (const routing::TableRef& ref : info.tables) any_written |= ref.written;
    for (const routing::TableRef& ref : info.tables) {
      // A write touches the tables it writes (all of them for DDL, which marks none).
      if (write && any_written && !ref.written) continue;
      const routing::ShardMap::Table* table = topology_->map()->FindTable(ref.schema, ref.name);
      const std::string& name = table != nullptr ? table->name : ref.name;
      bool keyed = false;
      if (table != nullptr && plan.keys_complete) {
        for (const routing::RoutedKey& k : plan.keys) {
          if (k.table != table) continue;
          add(CacheTag{name, KeyTag(k.key)});
          keyed = true;
        }
      }
      if (!keyed) add(CacheTag{name, std::nullopt});
    }
  }
  return tags;
}

std::string ClientSession::CacheKey(char kind, std::string_view sql, std::string_view extra) const {
  // The answer depends on who asks (privileges, row security) and on the session's settings
  // (DateStyle, TimeZone, search_path...), as well as on the statement.
  std::string key(1, kind);
  absl::StrAppend(&key, Av(user_name_), absl::string_view("\0", 1));
  for (const auto& [name, statement] : settings_) {
    absl::StrAppend(&key, Av(statement), absl::string_view("\0", 1));
  }
  // SET shardgate.shard / shardgate.key route the same text elsewhere.
  absl::StrAppend(&key, "\x02", Av(session_hints_.shard.value_or("")), absl::string_view("\0", 1),
                  Av(session_hints_.key.value_or("")));
  absl::StrAppend(&key, "\x01", Av(sql), absl::string_view("\0", 1), Av(extra));
  return key;
}

bool ClientSession::CacheLookup(std::string key, const routing::Analysis& analysis,
                                routing::RoutePlan& plan, std::chrono::milliseconds ttl,
                                bool extended, std::string_view portal) {
  std::shared_ptr<const std::string> answer = cache_->Lookup(key, QueryCache::Clock::now());
  if (answer) {
    if (stats_) ++stats_->direct;
    if (extended) {
      cached_portal_ = CachedPortal{std::string(portal), std::move(answer), 0};
      std::string out;
      p::AppendBindComplete(out);
      LocalAnswer(std::move(out));
    } else {
      LocalAnswer(std::string(*answer));
      Push(Expect::kInjectReady);
    }
    return true;
  }
  // A pending fill lives from here to the routing of the same statement: one left is stale.
  fill_pending_.reset();
  if (fill_ && !fill_->open && expected_.empty()) fill_.reset();  // never finished: stale
  if (fill_) return false;                                        // one fill at a time
  CacheFill fill;
  fill.key = std::move(key);
  fill.tags = CacheTags(analysis, plan, false);
  fill.ttl = ttl;
  fill.token = cache_->BeginFill();
  fill.extended = extended;
  fill_pending_ = std::move(fill);
  // A replica may not have a write yet whose transaction is over: what enters the cache is read
  // from the primary.
  plan.role = routing::Role::kPrimary;
  return false;
}

void ClientSession::UpdateCache(const conf::DatabaseConfig& db) {
  cache_on_ = db.query_cache.enabled;
  if (cache_on_) cache_ = &worker_.runtime().query_cache(db_name_, db.query_cache);
}

void ClientSession::StoreFanOutAnswer(CacheFill fill, size_t start, uint64_t flushes) {
  // The merged answer is all in client_out_ from `start` (nothing was flushed meanwhile), up to
  // the ReadyForQuery FanOutQuery added: stored when it is rows and one CommandComplete only.
  if (flushes != client_flushes_ || closing_ || start > client_out_.size()) return;
  std::string_view answer = std::string_view(client_out_).substr(start);
  size_t pos = 0;
  bool complete = false;
  while (pos < answer.size()) {
    const size_t size = MessageSize(answer.substr(pos));
    const char type = answer[pos];
    if (size == 0) return;
    if (type == p::be::kReadyForQuery && complete && pos + size == answer.size()) break;
    if (complete || (type != p::be::kRowDescription && type != p::be::kDataRow &&
                     type != p::be::kCommandComplete)) {
      return;  // an error, a notice, an empty query: not cached
    }
    complete = type == p::be::kCommandComplete;
    pos += size;
  }
  if (!complete || pos == answer.size()) return;
  cache_->Store(std::move(fill.key), std::string(answer.substr(0, pos)), std::move(fill.tags),
                fill.ttl, fill.token, QueryCache::Clock::now());
}

void ClientSession::ArmCacheFill() {
  fill_ = std::move(fill_pending_);
  fill_pending_.reset();
}

void ClientSession::NoteCacheWrite(const routing::Analysis& analysis,
                                   const routing::RoutePlan& plan) {
  std::vector<CacheTag> fresh;
  for (CacheTag& tag : CacheTags(analysis, plan, true)) {
    // A tag this transaction already writes is held until it ends: nothing of it can be stored
    // meanwhile, so there is nothing to invalidate either.
    if (cache_writes_.insert(tag).second) fresh.push_back(std::move(tag));
  }
  if (!fresh.empty()) cache_->BeginWrite(fresh);
}

void ClientSession::EndCacheWrites(bool force) {
  if (cache_writes_.empty()) return;
  if (!force && (InTransaction() || (server_ && !expected_.empty()) || copy_in_)) return;
  std::vector<CacheTag> tags(cache_writes_.begin(), cache_writes_.end());
  cache_writes_.clear();
  cache_->EndWrite(tags);
}

void ClientSession::CaptureForCache(const Item& head, const p::Frame& frame) {
  CacheFill& fill = *fill_;
  const char type = frame.type;
  if (type == p::be::kReadyForQuery) {
    if (head.kind != Expect::kQuery && head.kind != Expect::kSync) return;
    const char status = frame.body.empty() ? 'I' : frame.body[0];
    // Extended protocol: the key says whether the portal was described (CacheKey's last byte).
    const bool described = !fill.answer.empty() && fill.answer[0] == p::be::kRowDescription;
    const bool wanted = !fill.key.empty() && fill.key.back() == 'D';
    if (!fill.failed && fill.complete && status == 'I' && (!fill.extended || described == wanted)) {
      cache_->Store(std::move(fill.key), std::move(fill.answer), std::move(fill.tags), fill.ttl,
                    fill.token, QueryCache::Clock::now());
    }
    fill_.reset();
    return;
  }
  if (fill.failed) return;
  bool keep = false;
  switch (head.kind) {
    case Expect::kQuery:
      keep = type == p::be::kDataRow || type == p::be::kCommandComplete ||
             (type == p::be::kRowDescription && fill.answer.empty());
      break;
    case Expect::kDescribe:
      keep = type == p::be::kRowDescription && fill.answer.empty();
      break;
    case Expect::kExecute:
      keep = type == p::be::kDataRow || type == p::be::kCommandComplete;
      break;
    default:
      return;
  }
  if (!keep || fill.complete ||
      fill.answer.size() + frame.whole.size() > cache_->limits().max_entry) {
    // An error, a notice, an empty query, a suspended portal, a second result, or too big.
    fill.failed = true;
    std::string().swap(fill.answer);
    return;
  }
  fill.answer.append(frame.whole);
  if (type == p::be::kCommandComplete) fill.complete = true;
}

bool ClientSession::AnswerCachedPortal(const p::Frame& frame) {
  CachedPortal& portal = *cached_portal_;
  const std::string& answer = *portal.answer;
  const size_t row_description =
      !answer.empty() && answer[0] == p::be::kRowDescription ? MessageSize(answer) : 0;
  if (frame.type == p::fe::kDescribe) {
    auto d = p::ParseDescribe(frame.body);
    if (!d.ok() || d->kind != 'P' || d->name != portal.name) return false;
    std::string out;
    if (row_description > 0) {
      out.assign(answer, 0, row_description);
    } else {
      p::AppendNoData(out);
    }
    LocalAnswer(std::move(out));
    return true;
  }
  auto e = p::ParseExecute(frame.body);
  if (!e.ok() || e->portal != portal.name) return false;
  // As a server runs a portal: with a row limit, that many rows and PortalSuspended (also when
  // they were the last: the server learns that only at the next Execute); then CommandComplete
  // counting the rows of that Execute. A portal run in one go gets the cached answer as it is.
  const bool resumed = portal.offset > row_description;
  size_t pos = std::max(portal.offset, row_description);
  const size_t start = pos;
  int32_t rows = 0;
  std::string out;
  while (pos < answer.size()) {
    const size_t size = MessageSize(std::string_view(answer).substr(pos));
    if (size == 0 || answer[pos] != p::be::kDataRow) break;
    pos += size;
    ++rows;
    if (e->max_rows > 0 && rows == e->max_rows) {
      out.assign(answer, start, pos - start);
      out.append("s\0\0\0\4", 5);
      portal.offset = pos;
      LocalAnswer(std::move(out));
      return true;
    }
  }
  out.assign(answer, start, pos - start);
  const size_t complete =
      MessageSize(std::string_view(answer).substr(std::min(pos, answer.size())));
  if (!resumed && complete > 0) {
    out.append(answer, pos, complete);
  } else {
    p::AppendCommandComplete(out, absl::StrCat("SELECT ", rows));
  }
  portal.offset = answer.size();
  LocalAnswer(std::move(out));
  return true;
}

}  // namespace shardgate::proxy
