// A bounded LRU cache of analyses keyed by the normalized statement (literals as $N), so a
// statement repeated with new literals costs a lexer pass and a hash lookup, not a parse.
// One cache per worker thread: not thread-safe, by design (no locks on the hot path).
//
// API: AnalysisCache::Analyze(sql) -> {analysis, literals, hit}; Prepare(sql) for Parse
// messages (the result owns its literals and lives as long as the prepared statement).
#pragma once

#include <list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/analyzer.h"
#include "routing/normalize.h"

namespace shardgate::routing {

struct PreparedAnalysis {
  std::shared_ptr<const Analysis> analysis;
  std::vector<Literal> literals;  // PlanInput::literals for every execution
};

class AnalysisCache {
 public:
  static constexpr size_t kDefaultCapacity = 10000;
  // Statements longer than this are analysed every time rather than cached (bounds memory).
  static constexpr size_t kMaxCachedLength = 64 * 1024;

  explicit AnalysisCache(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  struct Result {
    std::shared_ptr<const Analysis> analysis;
    // The literals of `sql` for PlanInput::literals; valid until the next call on this cache.
    std::span<const Literal> literals;
    // The statement with literal i as $(max_param + 1 + i) and comments dropped (what the
    // analysis was made from), when `literals` are its slots; empty otherwise. Valid as long as
    // `literals`.
    std::string_view normalized;
    int max_param = 0;
    bool hit = false;
  };

  // Unparseable SQL is 42601 (the error of the statement as written).
  absl::StatusOr<Result> Analyze(std::string_view sql);
  absl::StatusOr<PreparedAnalysis> Prepare(std::string_view sql);

  size_t size() const { return lru_.size(); }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  void Clear();

 private:
  struct Entry {
    std::string key;
    // nullptr: the normalized form does not parse (typed literals in odd places, SET ...), so
    // statements of this shape are analysed as written, and cached under their exact text.
    std::shared_ptr<const Analysis> analysis;
  };
  using List = std::list<Entry>;

  Entry* Find(std::string_view key);
  void Put(std::string key, std::shared_ptr<const Analysis> analysis);
  absl::StatusOr<Result> Exact(std::string_view sql);
  std::string_view NormalizedSql() const;

  size_t capacity_;
  List lru_;  // front = most recently used
  std::unordered_map<std::string_view, List::iterator> index_;  // views into Entry::key
  NormalizedStatement norm_;  // reused between calls
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace shardgate::routing
