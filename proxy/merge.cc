// Merger: turns the result streams of one fan-out read into the rows one server would return
// (concatenation, a k-way ORDER BY merge, or combined partial aggregates), then DISTINCT,
// OFFSET/LIMIT and hidden-column removal. Values stay in their wire format throughout.
#include "proxy/merge.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "protocol/status.h"
#include "proxy/pg_value.h"

namespace shardgate::proxy {
namespace {

using routing::HavingExpr;
using Role = routing::MergeColumn::Role;
using Values = absl::InlinedVector<std::optional<std::string_view>, 16>;

// Bookkeeping cost of a held row and of each of its values beyond their bytes (allocations,
// vectors, hash slots). Approximate on purpose: the limit exists so that one query cannot take
// the proxy's memory, not to count bytes exactly.
constexpr size_t kRowOverhead = 64;
constexpr size_t kValueOverhead = 16;

void AppendInt32(std::string& out, uint32_t v) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(bytes, 4);
}

// Appends `v` as a DataRow encodes it (int32 length or -1, then the bytes): concatenated, an
// unambiguous key for GROUP BY and DISTINCT in which NULLs are equal to each other.
void AppendKey(std::string& key, std::optional<std::string_view> v) {
  AppendInt32(key, v ? static_cast<uint32_t>(v->size()) : 0xFFFFFFFFU);
  if (v) key.append(*v);
}

// A whole DataRow message around an unchanged body: the fast path that avoids re-encoding.
void AppendDataRowBody(std::string& out, std::string_view body) {
  out.push_back(protocol::be::kDataRow);
  AppendInt32(out, static_cast<uint32_t>(body.size() + 4));
  out.append(body);
}

enum class Truth { kFalse, kTrue, kUnknown };

absl::Status MemoryError(size_t limit) {
  return PgStatus(
      "54000",
      absl::StrCat("fan-out result exceeds the proxy's merge memory limit (", limit, " bytes)"),
      "Add a LIMIT, or a condition on the shard key so that the query runs on one "
      "shard.");
}

}  // namespace

struct Merger::Impl {
  enum class Mode { kConcat, kOrderBy, kAggregate };

  // A DataRow waiting in a shard's ORDER BY queue. `values` point into `body`, so a QueuedRow
  // never moves once filled (std::deque keeps elements in place on push_back/pop_front).
  struct QueuedRow {
    std::string body;
    Values values;
  };

  struct Shard {
    bool done = false;
    int64_t pending_rows = 0;     // concatenation: rows of this shard waiting for Emit
    std::deque<QueuedRow> queue;  // ORDER BY
  };

  // One group of the aggregate table. After Finalize, `views` point into `values` (the groups
  // vector no longer grows then, so they stay valid).
  struct Group {
    std::vector<std::optional<std::string>> values;
    size_t bytes = 0;
    Values views;
  };

  // A resolved HAVING operand: a column value (with its type) or a constant / parameter text.
  struct Operand {
    bool column = false;
    uint32_t type = 0;
    int16_t format = 0;
    std::optional<std::string_view> value;  // nullopt = NULL
  };

  Impl(const routing::MergePlan& p, int n, std::optional<int64_t> lim, std::optional<int64_t> off,
       MergeOptions opts)
      : plan(p), limit(lim), offset(off), options(opts), shards(n > 0 ? n : 0) {
    mode = plan.aggregate ? Mode::kAggregate
                          : (plan.order_by.empty() ? Mode::kConcat : Mode::kOrderBy);
  }

  // ---- Setup.
  absl::Status CheckShard(int shard) const {
    if (shard < 0 || shard >= static_cast<int>(shards.size())) {
      return PgStatus("XX000", absl::StrCat("merge: shard index ", shard, " out of range"));
    }
    return absl::OkStatus();
  }
  absl::Status OnRowDescription(int shard, std::string_view body);
  absl::Status CheckPlan();
  absl::Status CheckColumn(int column, std::string_view what) const;
  std::string ClientRowDescription() const;

  // ---- Rows.
  absl::Status OnDataRow(int shard, std::string_view body);
  absl::Status AddToGroup(const Values& values);
  absl::Status Emit(std::string& out);
  absl::Status EmitOrdered(std::string& out);
  absl::Status EmitAggregate(std::string& out);
  // DISTINCT, OFFSET and LIMIT for a row about to go out; false when it is dropped.
  absl::StatusOr<bool> Admit(const Values& values);
  void Output(std::string& out, std::string_view body, const Values& values) const;
  absl::StatusOr<int> CompareRows(const Values& a, const Values& b) const;

  // ---- Aggregates.
  absl::Status Finalize();
  absl::StatusOr<Truth> EvalHaving(const HavingExpr& e, const Values& row) const;
  absl::StatusOr<Operand> Resolve(const HavingExpr::Operand& o, const Values& row) const;
  absl::StatusOr<int> CompareOperands(const Operand& a, const Operand& b) const;

  // ---- Memory.
  absl::Status Hold(size_t bytes) {
    held += bytes;
    peak = std::max(peak, held);
    if (held > options.max_memory) return MemoryError(options.max_memory);
    return absl::OkStatus();
  }
  void Release(size_t bytes) { held -= std::min(held, bytes); }

  bool AllDone() const {
    return std::all_of(shards.begin(), shards.end(), [](const Shard& s) { return s.done; });
  }
  bool LimitReached() const { return limit.has_value() && accepted >= *limit; }
  int NumFields() const { return static_cast<int>(description.fields.size()); }

  routing::MergePlan plan;
  std::optional<int64_t> limit;
  std::optional<int64_t> offset;
  MergeOptions options;
  Mode mode = Mode::kConcat;
  std::vector<std::optional<std::string>> params;
  std::vector<Shard> shards;

  // The first RowDescription (owned; `description` points into it) and, per column, the type
  // and format of the merged value (avg columns: AverageType of the sum).
  bool described = false;
  std::string description_body;
  protocol::RowDescription description;
  std::vector<uint32_t> types;
  std::vector<int16_t> formats;

  std::string pending;  // concatenation: whole DataRow messages ready for Emit
  int64_t pending_rows = 0;

  int64_t skipped = 0;   // rows dropped by OFFSET
  int64_t accepted = 0;  // rows past OFFSET, counted against LIMIT
  int64_t emitted = 0;   // rows appended by Emit
  size_t held = 0;
  size_t peak = 0;
  absl::flat_hash_set<std::string> distinct_seen;

  absl::flat_hash_map<std::string, size_t> group_index;  // group key -> index in `groups`
  std::vector<Group> groups;
  bool finalized = false;
  std::vector<size_t> final_order;  // indexes into `groups`: HAVING passed, sorted
  size_t next_final = 0;
};

// ---- Setup.

absl::Status Merger::Impl::OnRowDescription(int shard, std::string_view body) {
  RETURN_IF_ERROR(CheckShard(shard));
  ASSIGN_OR_RETURN(protocol::RowDescription rd, protocol::ParseRowDescription(body));
  if (!described) {
    description_body.assign(body);
    // Re-parsed from the owned copy so that the field names stay valid after `body` goes away.
    ASSIGN_OR_RETURN(description, protocol::ParseRowDescription(description_body));
    described = true;
    return CheckPlan();
  }
  const auto& mine = description.fields;
  const auto& theirs = rd.fields;
  const size_t n = std::max(mine.size(), theirs.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= mine.size() || i >= theirs.size()) {
      const bool missing = i >= theirs.size();
      const auto& extra = missing ? mine[i] : theirs[i];
      return PgStatus(
          "0A000",
          absl::StrCat("shards returned different columns: column \"", AbslView(extra.name),
                       "\" is ", missing ? "missing on shard " : "only on shard ", shard),
          "The table must have the same columns on every shard.");
    }
    const auto& a = mine[i];
    const auto& b = theirs[i];
    if (a.name != b.name || a.type_oid != b.type_oid || a.format != b.format) {
      return PgStatus(
          "0A000",
          absl::StrCat("shards returned different columns: column ", i + 1, " is \"",
                       AbslView(a.name), "\" (", TypeName(a.type_oid), ") on one shard and \"",
                       AbslView(b.name), "\" (", TypeName(b.type_oid), ") on shard ", shard),
          "The table must have the same columns on every shard.");
    }
  }
  return absl::OkStatus();
}

absl::Status Merger::Impl::CheckColumn(int column, std::string_view what) const {
  if (column < 0 || column >= NumFields()) {
    return PgStatus("0A000", absl::StrCat("cannot merge the shards' results: the merge plan's ",
                                          AbslView(what), " refers to column ", column + 1,
                                          " but the result has ", NumFields(), " columns"));
  }
  return absl::OkStatus();
}

absl::Status Merger::Impl::CheckPlan() {
  const int n = NumFields();
  // SELECT * (and plain concatenation): the visible columns are known only now.
  if (plan.visible_columns < 0) RETURN_IF_ERROR(routing::ResolveColumns(plan, n));
  if (plan.visible_columns < 0 || plan.visible_columns > n) {
    return CheckColumn(plan.visible_columns - 1, "select list");
  }
  types.resize(n);
  formats.resize(n);
  for (int i = 0; i < n; ++i) {
    types[i] = description.fields[i].type_oid;
    formats[i] = description.fields[i].format;
  }
  auto unsupported = [&](int column, std::string_view what) {
    return PgStatus("0A000",
                    absl::StrCat(AbslView(what), " of type ", TypeName(types[column]),
                                 " cannot be merged across shards (column \"",
                                 AbslView(description.fields[column].name), "\")"),
                    "Add a condition on the shard key so that the query runs on one shard.");
  };
  if (plan.aggregate) {
    if (static_cast<int>(plan.columns.size()) != n) {
      return PgStatus("0A000",
                      absl::StrCat("cannot merge the shards' results: the merge plan "
                                   "describes ",
                                   plan.columns.size(), " columns but the result has ", n));
    }
    for (int g : plan.group_columns) RETURN_IF_ERROR(CheckColumn(g, "GROUP BY"));
    for (int i = 0; i < n; ++i) {
      const routing::MergeColumn& c = plan.columns[i];
      switch (c.role) {
        case Role::kPlain:
          break;
        case Role::kCount:
        case Role::kSum:
          if (!CanAdd(types[i])) return unsupported(i, "sum()");
          break;
        case Role::kMin:
        case Role::kMax:
          if (!HasKnownOrder(types[i])) return unsupported(i, "min()/max()");
          break;
        case Role::kAvg: {
          RETURN_IF_ERROR(CheckColumn(c.count_column, "avg() count"));
          const uint32_t avg_type = AverageType(types[i]);
          if (avg_type == 0) return unsupported(i, "avg()");
          types[i] = avg_type;
          break;
        }
      }
    }
  }
  for (const routing::MergeSortKey& k : plan.order_by) {
    RETURN_IF_ERROR(CheckColumn(k.column, "ORDER BY"));
    if (!HasKnownOrder(types[k.column])) return unsupported(k.column, "ORDER BY");
  }
  if (plan.having) {
    std::vector<const HavingExpr*> stack = {&*plan.having};
    while (!stack.empty()) {
      const HavingExpr* e = stack.back();
      stack.pop_back();
      for (const auto& o : e->operands) {
        if (o.column >= 0) RETURN_IF_ERROR(CheckColumn(o.column, "HAVING"));
      }
      for (const auto& a : e->args) stack.push_back(&a);
    }
  }
  return absl::OkStatus();
}

std::string Merger::Impl::ClientRowDescription() const {
  // Clamped so that a call before described() (a contract breach) yields no fields, not UB.
  const int visible = std::clamp(plan.visible_columns, 0, NumFields());
  std::vector<protocol::FieldDescription> fields(description.fields.begin(),
                                                 description.fields.begin() + visible);
  for (int i = 0; i < visible; ++i) {
    if (plan.aggregate && i < static_cast<int>(plan.columns.size()) &&
        plan.columns[i].role == Role::kAvg) {
      fields[i].type_oid = types[i];
      fields[i].type_size = types[i] == oid::kNumeric ? -1 : 8;
      fields[i].type_modifier = -1;
    }
  }
  std::string out;
  protocol::AppendRowDescription(out, fields);
  return out;
}

// ---- Rows.

absl::Status Merger::Impl::OnDataRow(int shard, std::string_view body) {
  RETURN_IF_ERROR(CheckShard(shard));
  if (!described) {
    return PgStatus("08P01",
                    absl::StrCat("DataRow from shard ", shard, " before any RowDescription"));
  }
  if (shards[shard].done) {
    return PgStatus("08P01", absl::StrCat("DataRow from shard ", shard, " after its end"));
  }
  ASSIGN_OR_RETURN(protocol::DataRow row, protocol::ParseDataRow(body));
  if (static_cast<int>(row.values.size()) != NumFields()) {
    return PgStatus("08P01", absl::StrCat("DataRow from shard ", shard, " has ", row.values.size(),
                                          " columns, its RowDescription ", NumFields()));
  }
  switch (mode) {
    case Mode::kConcat: {
      if (LimitReached()) return absl::OkStatus();  // the rest is read and discarded
      ASSIGN_OR_RETURN(const bool keep, Admit(row.values));
      if (!keep) return absl::OkStatus();
      const size_t before = pending.size();
      Output(pending, body, row.values);
      ++pending_rows;
      ++shards[shard].pending_rows;
      return Hold(pending.size() - before);
    }
    case Mode::kOrderBy: {
      if (LimitReached()) return absl::OkStatus();
      QueuedRow& q = shards[shard].queue.emplace_back();
      q.body.assign(body);
      q.values.reserve(row.values.size());
      for (const auto& v : row.values) {
        if (!v) {
          q.values.emplace_back();
        } else {
          q.values.emplace_back(std::string_view(q.body).substr(
              static_cast<size_t>(v->data() - body.data()), v->size()));
        }
      }
      return Hold(body.size() + kRowOverhead);
    }
    case Mode::kAggregate:
      return AddToGroup(row.values);
  }
  return absl::OkStatus();
}

absl::Status Merger::Impl::AddToGroup(const Values& values) {
  std::string key;
  for (int g : plan.group_columns) AppendKey(key, values[g]);
  auto [it, inserted] = group_index.try_emplace(key, groups.size());
  const int n = NumFields();
  auto group_bytes = [&](const Group& g) {
    size_t bytes = key.size() + kRowOverhead;
    for (const auto& v : g.values) bytes += kValueOverhead + (v ? v->size() : 0);
    return bytes;
  };
  if (inserted) {
    Group& g = groups.emplace_back();
    g.values.reserve(n);
    for (const auto& v : values) {
      g.values.emplace_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
    }
    g.bytes = group_bytes(g);
    return Hold(g.bytes);
  }
  Group& g = groups[it->second];
  for (int i = 0; i < n; ++i) {
    const std::optional<std::string_view>& v = values[i];
    std::optional<std::string>& acc = g.values[i];
    if (!v) continue;  // NULLs never change a partial: NULL + x = x, min/max ignore NULLs
    switch (plan.columns[i].role) {
      case Role::kPlain:
        break;
      case Role::kCount:
      case Role::kSum:
      case Role::kAvg:  // the sum partial; its count lives in count_column
        if (!acc) {
          acc.emplace(*v);
        } else {
          RETURN_IF_ERROR(AddValue(description.fields[i].type_oid, formats[i], *acc, *v));
        }
        break;
      case Role::kMin:
      case Role::kMax: {
        if (!acc) {
          acc.emplace(*v);
          break;
        }
        ASSIGN_OR_RETURN(const int c, CompareValues(types[i], formats[i], *v, *acc));
        if (plan.columns[i].role == Role::kMin ? c < 0 : c > 0) acc->assign(*v);
        break;
      }
    }
  }
  const size_t bytes = group_bytes(g);
  Release(g.bytes);
  g.bytes = bytes;
  return Hold(bytes);
}

absl::StatusOr<bool> Merger::Impl::Admit(const Values& values) {
  if (LimitReached()) return false;
  if (plan.distinct) {
    std::string key;
    for (int i = 0; i < plan.visible_columns; ++i) AppendKey(key, values[i]);
    const size_t bytes = key.size() + kRowOverhead;
    if (!distinct_seen.insert(std::move(key)).second) return false;
    RETURN_IF_ERROR(Hold(bytes));
  }
  if (offset && skipped < *offset) {
    ++skipped;
    return false;
  }
  ++accepted;
  return true;
}

void Merger::Impl::Output(std::string& out, std::string_view body, const Values& values) const {
  if (plan.visible_columns == NumFields() && !body.empty()) {
    AppendDataRowBody(out, body);
  } else {
    protocol::AppendDataRow(
        out, std::span<const std::optional<std::string_view>>(values.data(), plan.visible_columns));
  }
}

absl::StatusOr<int> Merger::Impl::CompareRows(const Values& a, const Values& b) const {
  for (const routing::MergeSortKey& k : plan.order_by) {
    const auto& va = a[k.column];
    const auto& vb = b[k.column];
    int c = 0;
    if (!va || !vb) {
      if (!va && !vb) continue;
      // A NULL sorts before everything with NULLS FIRST, after everything otherwise.
      c = (!va) == k.nulls_first ? -1 : 1;
      return c;
    }
    ASSIGN_OR_RETURN(c, CompareValues(types[k.column], formats[k.column], *va, *vb));
    if (c != 0) return k.descending ? -c : c;
  }
  return 0;
}

absl::Status Merger::Impl::Emit(std::string& out) {
  switch (mode) {
    case Mode::kConcat:
      out.append(pending);
      Release(pending.size());
      emitted += pending_rows;
      pending.clear();
      pending_rows = 0;
      for (Shard& s : shards) s.pending_rows = 0;
      return absl::OkStatus();
    case Mode::kOrderBy:
      return EmitOrdered(out);
    case Mode::kAggregate:
      return EmitAggregate(out);
  }
  return absl::OkStatus();
}

absl::Status Merger::Impl::EmitOrdered(std::string& out) {
  while (true) {
    if (LimitReached()) {
      for (Shard& s : shards) {
        for (const QueuedRow& q : s.queue) Release(q.body.size() + kRowOverhead);
        s.queue.clear();
      }
      return absl::OkStatus();
    }
    // The smallest head is only known while every unfinished shard has shown its next row.
    int best = -1;
    for (int i = 0; i < static_cast<int>(shards.size()); ++i) {
      const Shard& s = shards[i];
      if (s.queue.empty()) {
        if (!s.done) return absl::OkStatus();
        continue;
      }
      if (best < 0) {
        best = i;
        continue;
      }
      // Strictly smaller only: on a tie the lower shard index wins, for a deterministic order.
      ASSIGN_OR_RETURN(const int c,
                       CompareRows(s.queue.front().values, shards[best].queue.front().values));
      if (c < 0) best = i;
    }
    if (best < 0) return absl::OkStatus();
    Shard& s = shards[best];
    QueuedRow& q = s.queue.front();
    ASSIGN_OR_RETURN(const bool keep, Admit(q.values));
    if (keep) {
      Output(out, q.body, q.values);
      ++emitted;
    }
    Release(q.body.size() + kRowOverhead);
    s.queue.pop_front();
  }
}

absl::Status Merger::Impl::EmitAggregate(std::string& out) {
  if (!AllDone()) return absl::OkStatus();
  if (!finalized) RETURN_IF_ERROR(Finalize());
  for (; next_final < final_order.size(); ++next_final) {
    if (LimitReached()) {
      next_final = final_order.size();
      break;
    }
    const Group& g = groups[final_order[next_final]];
    ASSIGN_OR_RETURN(const bool keep, Admit(g.views));
    if (!keep) continue;
    Output(out, {}, g.views);
    ++emitted;
  }
  return absl::OkStatus();
}

// ---- Aggregates.

absl::Status Merger::Impl::Finalize() {
  finalized = true;
  const int n = NumFields();
  if (plan.group_columns.empty() && groups.empty()) {
    // An ungrouped aggregate always has one row, even over no rows at all: counts are 0 and
    // every other aggregate is NULL.
    Group& g = groups.emplace_back();
    g.values.resize(n);
    for (int i = 0; i < n; ++i) {
      if (plan.columns[i].role == Role::kCount) {
        ASSIGN_OR_RETURN(std::string zero, EncodeConstant(types[i], formats[i], "0"));
        g.values[i] = std::move(zero);
      }
    }
  }
  for (Group& g : groups) {
    for (int i = 0; i < n; ++i) {
      const routing::MergeColumn& c = plan.columns[i];
      if (c.role != Role::kAvg) continue;
      std::optional<std::string>& sum = g.values[i];
      const std::optional<std::string>& count = g.values[c.count_column];
      if (!sum || !count) {
        sum.reset();
        continue;
      }
      const uint32_t count_type = description.fields[c.count_column].type_oid;
      const int16_t count_format = formats[c.count_column];
      ASSIGN_OR_RETURN(const std::string zero, EncodeConstant(count_type, count_format, "0"));
      if (*count == zero) {
        sum.reset();
        continue;
      }
      ASSIGN_OR_RETURN(std::string avg,
                       AverageValue(description.fields[i].type_oid, formats[i], *sum, *count));
      sum = std::move(avg);
    }
  }
  // `groups` is final from here on: the views stay valid.
  final_order.reserve(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    Group& g = groups[i];
    g.views.clear();
    for (const auto& v : g.values) {
      g.views.emplace_back(v ? std::optional<std::string_view>(*v) : std::nullopt);
    }
    if (plan.having) {
      ASSIGN_OR_RETURN(const Truth t, EvalHaving(*plan.having, g.views));
      if (t != Truth::kTrue) continue;
    }
    final_order.push_back(i);
  }
  if (!plan.order_by.empty()) {
    absl::Status error;
    std::stable_sort(final_order.begin(), final_order.end(), [&](size_t a, size_t b) {
      if (!error.ok()) return false;
      absl::StatusOr<int> c = CompareRows(groups[a].views, groups[b].views);
      if (!c.ok()) {
        error = c.status();
        return false;
      }
      return *c < 0;
    });
    RETURN_IF_ERROR(error);
  }
  return absl::OkStatus();
}

absl::StatusOr<Merger::Impl::Operand> Merger::Impl::Resolve(const HavingExpr::Operand& o,
                                                            const Values& row) const {
  Operand r;
  if (o.column >= 0) {
    r.column = true;
    r.type = types[o.column];
    r.format = formats[o.column];
    r.value = row[o.column];
    return r;
  }
  if (o.value.param > 0) {
    if (o.value.param > static_cast<int>(params.size())) {
      return PgStatus("08P01", absl::StrCat("HAVING refers to parameter $", o.value.param, " but ",
                                            params.size(), " were bound"));
    }
    const auto& p = params[o.value.param - 1];
    if (p) r.value = *p;
    return r;
  }
  if (!o.value.null) r.value = o.value.text;
  return r;
}

absl::StatusOr<int> Merger::Impl::CompareOperands(const Operand& a, const Operand& b) const {
  if (a.column && b.column) {
    if (a.type == b.type && a.format == b.format) {
      return CompareValues(a.type, a.format, *a.value, *b.value);
    }
    return CompareMixed(a.type, a.format, *a.value, b.type, b.format, *b.value);
  }
  if (!a.column && b.column) {
    ASSIGN_OR_RETURN(const int c, CompareOperands(b, a));
    return -c;
  }
  if (a.column) {
    // A constant takes the column's type, as PostgreSQL resolves `col > 10`; a constant that
    // is not of that type (count(*) > 1.5) is compared as a number when both are numbers.
    absl::StatusOr<std::string> encoded = EncodeConstant(a.type, a.format, *b.value);
    if (encoded.ok()) return CompareValues(a.type, a.format, *a.value, *encoded);
    if (IsNumberType(a.type)) {
      absl::StatusOr<int> c = CompareMixed(a.type, a.format, *a.value, oid::kNumeric, 0, *b.value);
      if (c.ok()) return c;
    }
    return encoded.status();
  }
  // Two constants (parameters, mostly): as numbers when both are, as text otherwise.
  absl::StatusOr<int> c = CompareMixed(oid::kNumeric, 0, *a.value, oid::kNumeric, 0, *b.value);
  if (c.ok()) return c;
  return a.value->compare(*b.value);
}

absl::StatusOr<Truth> Merger::Impl::EvalHaving(const HavingExpr& e, const Values& row) const {
  switch (e.kind) {
    case HavingExpr::Kind::kAnd:
    case HavingExpr::Kind::kOr: {
      const bool is_and = e.kind == HavingExpr::Kind::kAnd;
      // AND: false wins over unknown; OR: true wins over unknown.
      const Truth decisive = is_and ? Truth::kFalse : Truth::kTrue;
      Truth result = is_and ? Truth::kTrue : Truth::kFalse;
      for (const HavingExpr& a : e.args) {
        ASSIGN_OR_RETURN(const Truth t, EvalHaving(a, row));
        if (t == decisive) return decisive;
        if (t == Truth::kUnknown) result = Truth::kUnknown;
      }
      return result;
    }
    case HavingExpr::Kind::kNot: {
      if (e.args.empty()) return PgStatus("XX000", "merge: HAVING NOT without an argument");
      ASSIGN_OR_RETURN(const Truth t, EvalHaving(e.args[0], row));
      if (t == Truth::kUnknown) return t;
      return t == Truth::kTrue ? Truth::kFalse : Truth::kTrue;
    }
    case HavingExpr::Kind::kIsNull:
    case HavingExpr::Kind::kIsNotNull: {
      if (e.operands.empty()) return PgStatus("XX000", "merge: HAVING IS NULL without operand");
      ASSIGN_OR_RETURN(const Operand o, Resolve(e.operands[0], row));
      const bool is_null = !o.value.has_value();
      return is_null == (e.kind == HavingExpr::Kind::kIsNull) ? Truth::kTrue : Truth::kFalse;
    }
    case HavingExpr::Kind::kCompare: {
      if (e.operands.size() != 2) {
        return PgStatus("XX000", "merge: HAVING comparison without two operands");
      }
      ASSIGN_OR_RETURN(const Operand a, Resolve(e.operands[0], row));
      ASSIGN_OR_RETURN(const Operand b, Resolve(e.operands[1], row));
      if (!a.value || !b.value) return Truth::kUnknown;
      ASSIGN_OR_RETURN(const int c, CompareOperands(a, b));
      bool r = false;
      if (e.op == "=") {
        r = c == 0;
      } else if (e.op == "<>" || e.op == "!=") {
        r = c != 0;
      } else if (e.op == "<") {
        r = c < 0;
      } else if (e.op == "<=") {
        r = c <= 0;
      } else if (e.op == ">") {
        r = c > 0;
      } else if (e.op == ">=") {
        r = c >= 0;
      } else {
        return PgStatus("0A000", absl::StrCat("operator ", AbslView(e.op),
                                              " in HAVING cannot be merged across shards"));
      }
      return r ? Truth::kTrue : Truth::kFalse;
    }
  }
  return Truth::kUnknown;
}

// ---- Merger.

Merger::Merger(const routing::MergePlan& plan, int shard_count, std::optional<int64_t> limit,
               std::optional<int64_t> offset, MergeOptions options)
    : impl_(std::make_shared<Impl>(plan, shard_count, limit, offset, options)) {}

void Merger::SetParams(std::vector<std::optional<std::string>> text_values) {
  impl_->params = std::move(text_values);
}

absl::Status Merger::OnRowDescription(int shard, std::string_view body) {
  return impl_->OnRowDescription(shard, body);
}

bool Merger::described() const { return impl_->described; }

std::string Merger::ClientRowDescription() const { return impl_->ClientRowDescription(); }

absl::Status Merger::OnDataRow(int shard, std::string_view body) {
  return impl_->OnDataRow(shard, body);
}

void Merger::OnShardDone(int shard) {
  if (impl_->CheckShard(shard).ok()) impl_->shards[shard].done = true;
}

absl::Status Merger::Emit(std::string& out) { return impl_->Emit(out); }

bool Merger::CanAccept(int shard) const {
  if (!impl_->CheckShard(shard).ok()) return false;
  if (impl_->LimitReached()) return true;  // what arrives now is discarded
  const Impl::Shard& s = impl_->shards[shard];
  const auto batch = static_cast<int64_t>(impl_->options.batch);
  switch (impl_->mode) {
    case Impl::Mode::kConcat:
      return s.pending_rows < batch;
    case Impl::Mode::kOrderBy:
      return static_cast<int64_t>(s.queue.size()) < batch;
    case Impl::Mode::kAggregate:
      return true;  // bounded by max_memory instead: nothing leaves before every shard is done
  }
  return true;
}

bool Merger::LimitReached() const { return impl_->LimitReached(); }

bool Merger::Finished() const {
  const Impl& m = *impl_;
  if (!m.AllDone()) return false;
  switch (m.mode) {
    case Impl::Mode::kConcat:
      return m.pending_rows == 0;
    case Impl::Mode::kOrderBy:
      return std::all_of(m.shards.begin(), m.shards.end(),
                         [](const Impl::Shard& s) { return s.queue.empty(); });
    case Impl::Mode::kAggregate:
      return m.finalized && m.next_final >= m.final_order.size();
  }
  return true;
}

int64_t Merger::rows_emitted() const { return impl_->emitted; }

size_t Merger::peak_memory() const { return impl_->peak; }

}  // namespace shardgate::proxy
