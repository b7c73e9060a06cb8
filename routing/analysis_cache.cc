// The normalized-statement cache: lexer pass, LRU lookup, parse only on a miss.
#include "routing/analysis_cache.h"

#include "protocol/status.h"

namespace shardgate::routing {
namespace {

// Exact-text keys cannot collide with normalized ones: those end in "\0<max_param>" and SQL
// text from the protocol never contains a NUL.
std::string ExactKey(std::string_view sql) {
  std::string key = "\x01";
  key.append(sql);
  return key;
}

bool PinsMatch(const Analysis& a, const std::vector<Literal>& literals) {
  for (const QueryInfo& q : a.statements) {
    for (const auto& [slot, value] : q.pinned_literals) {
      if (slot < 0 || static_cast<size_t>(slot) >= literals.size() ||
          literals[slot].value != value) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

AnalysisCache::Entry* AnalysisCache::Find(std::string_view key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

void AnalysisCache::Put(std::string key, std::shared_ptr<const Analysis> analysis) {
  if (capacity_ == 0) return;
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->analysis = std::move(analysis);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Entry{std::move(key), std::move(analysis)});
  index_.emplace(lru_.front().key, lru_.begin());
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void AnalysisCache::Clear() {
  index_.clear();
  lru_.clear();
}

absl::StatusOr<AnalysisCache::Result> AnalysisCache::Exact(std::string_view sql) {
  std::string key = ExactKey(sql);
  if (Entry* e = Find(key); e != nullptr && e->analysis != nullptr) {
    ++hits_;
    return Result{e->analysis, {}, {}, 0, true};
  }
  ++misses_;
  ASSIGN_OR_RETURN(std::shared_ptr<const Analysis> a, routing::Analyze(sql));
  Put(std::move(key), a);
  return Result{std::move(a), {}, {}, 0, false};
}

std::string_view AnalysisCache::NormalizedSql() const {
  // norm_.text is the SQL, a NUL, then max_param.
  return std::string_view(norm_.text.c_str());
}

absl::StatusOr<AnalysisCache::Result> AnalysisCache::Analyze(std::string_view sql) {
  if (sql.size() > kMaxCachedLength) {
    ++misses_;
    ASSIGN_OR_RETURN(std::shared_ptr<const Analysis> a, routing::Analyze(sql));
    return Result{std::move(a), {}, {}, 0, false};
  }
  NormalizeInto(sql, norm_);
  if (Entry* e = Find(norm_.text)) {
    if (e->analysis == nullptr) return Exact(sql);
    if (PinsMatch(*e->analysis, norm_.literals)) {
      ++hits_;
      return Result{e->analysis, norm_.literals, NormalizedSql(), norm_.max_param, true};
    }
  }
  ++misses_;
  auto a = AnalyzeNormalized(norm_);
  if (!a.ok()) {
    // Either the statement is wrong (the exact parse reports it) or a literal sat where a
    // parameter may not: remember the shape as "analyse as written".
    auto exact = routing::Analyze(sql);
    if (!exact.ok()) return exact.status();
    Put(norm_.text, nullptr);
    Put(ExactKey(sql), *exact);
    return Result{std::move(*exact), {}, {}, 0, false};
  }
  Put(norm_.text, *a);
  return Result{std::move(*a), norm_.literals, NormalizedSql(), norm_.max_param, false};
}

absl::StatusOr<PreparedAnalysis> AnalysisCache::Prepare(std::string_view sql) {
  ASSIGN_OR_RETURN(Result r, Analyze(sql));
  PreparedAnalysis p;
  p.analysis = std::move(r.analysis);
  p.literals.assign(r.literals.begin(), r.literals.end());
  return p;
}

}  // namespace shardgate::routing
