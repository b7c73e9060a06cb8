// Differential test of cross-shard statements: one schema and one deterministic data set, loaded
// once into a single reference PostgreSQL and once through shardgate over three shards; a corpus
// of generated and hand-written queries (filters, ORDER BY with ties and NULLs, LIMIT/OFFSET,
// aggregates with and without GROUP BY/HAVING, DISTINCT, UNION, co-located and reference joins,
// the extended protocol and named prepared statements, writes on every shard, COPY) must give the
// reference's answer, or, for the constructs that cannot be merged exactly, 0A000 with a hint.
//
// One file on purpose: the corpus, the data and the comparison only make sense together, and the
// corpus is a long list rather than logic (hence past the usual ~800 lines).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/proxy/sharded_fixture.h"

namespace shardgate::testing {
namespace {

using Rows = std::vector<std::vector<std::string>>;

// ---------------------------------------------------------------------------------------------
// Results and their comparison

// Everything a client can observe of one statement's answer.
struct Result {
  bool ok = false;
  std::string sqlstate, message, hint;
  std::string cmd_tuples;  // PQcmdTuples: rows affected by a write ("" for SELECT-less commands)
  std::vector<std::string> names;
  std::vector<Oid> types;
  Rows rows;

  std::string Describe(size_t max_rows = 10) const {
    if (!ok)
      return absl::StrCat("ERROR ", sqlstate, ": ", message, hint.empty() ? "" : " HINT: ", hint);
    std::string out = absl::StrCat(rows.size(), " row(s) [", absl::StrJoin(names, ", "), "]");
    for (size_t i = 0; i < rows.size() && i < max_rows; ++i) {
      absl::StrAppend(&out, "\n      (", absl::StrJoin(rows[i], " | "), ")");
    }
    if (rows.size() > max_rows) absl::StrAppend(&out, "\n      ...");
    return out;
  }
};

Result Capture(PGconn* conn, PGresult* raw) {
  PgResult res(raw);
  Result out;
  const absl::Status st = ResultStatus(res.get(), conn);
  if (!st.ok()) {
    out.sqlstate = SqlState(st);
    out.message = std::string(st.message());
    if (res != nullptr) {
      if (const char* h = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_HINT)) out.hint = h;
      if (const char* m = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY)) out.message = m;
    }
    return out;
  }
  out.ok = true;
  out.cmd_tuples = PQcmdTuples(res.get());
  for (int c = 0; c < PQnfields(res.get()); ++c) {
    out.names.emplace_back(PQfname(res.get(), c));
    out.types.push_back(PQftype(res.get(), c));
  }
  out.rows = PgConn::RowsOf(res.get());
  return out;
}

// How much of the row order SQL defines for a query.
enum class Order {
  kNone,   // no ORDER BY (or one that does not matter): compared as multisets
  kTotal,  // ORDER BY orders every row: compared in order
  kKeys,   // ORDER BY with ties: the sort-key columns compared in order, whole rows as multisets
};

// One query of the corpus. Simple protocol unless `extended` (then `params` are $1.. as text).
struct Case {
  std::string sql;
  Order order = Order::kNone;
  std::vector<int> key_columns;  // kKeys: the select-list positions of the sort keys
  std::vector<std::string> params;
  bool extended = false;
};

Case Unordered(std::string sql) { return {std::move(sql), Order::kNone, {}, {}, false}; }
Case Total(std::string sql) { return {std::move(sql), Order::kTotal, {}, {}, false}; }
Case Keys(std::string sql, std::vector<int> keys) {
  return {std::move(sql), Order::kKeys, std::move(keys), {}, false};
}
Case Params(Case c, std::vector<std::string> params) {
  c.params = std::move(params);
  c.extended = true;
  return c;
}

bool IsFloat(Oid type) { return type == 700 || type == 701; }

// Float columns may differ in the last digits (partial sums are added in another order);
// everything else, numeric averages included, must be byte-identical.
bool CellEqual(const std::string& a, const std::string& b, Oid type) {
  if (a == b) return true;
  if (!IsFloat(type)) return false;
  char* end_a = nullptr;
  char* end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a);
  const double y = std::strtod(b.c_str(), &end_b);
  if (*end_a != '\0' || *end_b != '\0' || a.empty() || b.empty()) return false;
  return std::fabs(x - y) <= 1e-9 * std::max(std::fabs(x), std::fabs(y));
}

bool RowsEqual(const Rows& a, const Rows& b, const std::vector<Oid>& types) {
  if (a.size() != b.size()) return false;
  for (size_t r = 0; r < a.size(); ++r) {
    if (a[r].size() != b[r].size()) return false;
    for (size_t c = 0; c < a[r].size(); ++c) {
      if (!CellEqual(a[r][c], b[r][c], c < types.size() ? types[c] : 0)) return false;
    }
  }
  return true;
}

Rows Sorted(Rows rows) {
  std::sort(rows.begin(), rows.end());
  return rows;
}

// "" when `got` (through shardgate) is the answer `want` (the reference) allows, else why not.
std::string Difference(const Case& c, const Result& want, const Result& got) {
  if (!got.ok) return "shardgate failed where the reference answered";
  if (got.names != want.names) {
    return absl::StrCat("column names differ: [", absl::StrJoin(got.names, ", "), "]");
  }
  if (got.types != want.types) {
    return absl::StrCat("column types differ: [", absl::StrJoin(got.types, ", "), "] instead of [",
                        absl::StrJoin(want.types, ", "), "]");
  }
  if (got.cmd_tuples != want.cmd_tuples) {
    return absl::StrCat("command tag row count ", got.cmd_tuples, " instead of ", want.cmd_tuples);
  }
  if (got.rows.size() != want.rows.size()) return "row counts differ";
  switch (c.order) {
    case Order::kTotal:
      if (!RowsEqual(want.rows, got.rows, want.types)) return "rows differ (in order)";
      return "";
    case Order::kKeys: {
      auto project = [&c](const Rows& rows) {
        Rows out;
        for (const auto& row : rows) {
          auto& p = out.emplace_back();
          for (int k : c.key_columns) p.push_back(row.at(k));
        }
        return out;
      };
      if (project(want.rows) != project(got.rows)) return "sort-key sequence differs";
      [[fallthrough]];
    }
    case Order::kNone:
      if (!RowsEqual(Sorted(want.rows), Sorted(got.rows), want.types)) {
        return "rows differ (as multisets)";
      }
      return "";
  }
  return "";
}

Result RunCase(const PgConn& conn, const Case& c) {
  if (!c.extended) return Capture(conn.get(), PQexec(conn.get(), c.sql.c_str()));
  std::vector<const char*> values;
  for (const auto& p : c.params) values.push_back(p.c_str());
  return Capture(conn.get(),
                 PQexecParams(conn.get(), c.sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0));
}

// The rows only one side has (multiset difference, first 10 each), when the columns agree.
std::string Missing(const Result& want, const Result& got) {
  if (!got.ok || got.names != want.names) return "";
  const Rows a = Sorted(want.rows), b = Sorted(got.rows);
  Rows only_want, only_got;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_want));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_got));
  std::string out;
  for (const auto& [label, rows] :
       {std::pair{"\n  only expected: ", &only_want}, std::pair{"\n  only got: ", &only_got}}) {
    if (rows->empty()) continue;
    absl::StrAppend(&out, label, rows->size(), " row(s)");
    for (size_t i = 0; i < rows->size() && i < 10; ++i) {
      absl::StrAppend(&out, "\n      (", absl::StrJoin((*rows)[i], " | "), ")");
    }
  }
  return out;
}

// Counts and reports mismatches of one test: the first 20 in full, then only the count.
class Differ {
 public:
  void Check(const Case& c, const Result& want, const Result& got) {
    ++checked_;
    if (!want.ok) {
      ADD_FAILURE() << "corpus bug, the reference refuses: " << c.sql << "\n  " << want.Describe();
      return;
    }
    const std::string why = Difference(c, want, got);
    if (why.empty()) return;
    if (++mismatches_ <= 20) {
      ADD_FAILURE() << "MISMATCH (" << why << ")\n  sql: " << c.sql << Missing(want, got)
                    << (c.params.empty()
                            ? ""
                            : absl::StrCat("\n  params: [", absl::StrJoin(c.params, ", "), "]"))
                    << "\n  expected: " << want.Describe() << "\n  got:      " << got.Describe();
    }
  }
  void Finish(const char* what) {
    EXPECT_EQ(mismatches_, 0) << mismatches_ << " of " << checked_ << " " << what
                              << " differ from the reference";
  }

 private:
  int checked_ = 0, mismatches_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Schema and data

constexpr char kYaml[] =
    "    routers:\n"
    "      by_customer: {type: hash_ring, shards: [s0, s1, s2]}\n"
    "      by_id: {type: modulo, hash: postgres, shards: [s0, s1, s2]}\n"
    "    tables:\n"
    "      customers: {key: id, router: by_customer}\n"
    "      orders: {key: customer_id, router: by_customer}\n"
    "      items: {key: id, router: by_id}\n"
    "      ledger: {key: id, router: by_id}\n"
    "      copy_target: {key: id, router: by_customer}\n"
    "      regions: {reference: true}\n";

// One statement per element: DDL through shardgate goes to every shard one statement at a time.
const std::vector<std::string>& Schema() {
  static const auto* schema = new std::vector<std::string>{
      "CREATE TABLE regions (id int PRIMARY KEY, name text, code text)",
      "CREATE TABLE customers (id bigint PRIMARY KEY, name text, tier text, region_id int, "
      "score int, balance numeric(12,2), rating float8, signup date, last_seen timestamp, "
      "active bool)",
      "CREATE TABLE orders (id bigint, customer_id bigint, amount numeric(12,2), qty int, "
      "weight float8, status text, placed date, PRIMARY KEY (customer_id, id))",
      "CREATE TABLE items (id bigint PRIMARY KEY, sku text, category text, region_id int, "
      "price numeric(12,2), stock int, ratio float8, added date, discontinued bool)",
      "CREATE TABLE ledger (id bigint PRIMARY KEY, acct int, amount numeric(12,2), memo text, "
      "flag bool)",
      "CREATE TABLE copy_target (id bigint PRIMARY KEY, label text, n int, x float8, d date)",
  };
  return *schema;
}

// splitmix64: the same sequence on every platform (std distributions are not portable).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  bool Percent(int p) { return Below(100) < p; }

 private:
  uint64_t state_;
};

std::string Quote(const std::string& s) { return absl::StrCat("'", s, "'"); }

// 2020-01-01 plus `days`, as 'YYYY-MM-DD' (civil-from-days, proleptic Gregorian).
std::string Date(int days) {
  int64_t z = 18262 + days + 719468;  // 18262 = days from 1970-01-01 to 2020-01-01
  const int64_t era = z / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d", static_cast<int>(y), static_cast<int>(m),
                static_cast<int>(d));
  return buf;
}

std::string Money(Rng& rng, int min_cents, int max_cents) {
  const int v = min_cents + rng.Below(max_cents - min_cents + 1);
  return absl::StrCat(v < 0 ? "-" : "", std::abs(v) / 100, ".", std::abs(v) % 100 < 10 ? "0" : "",
                      std::abs(v) % 100);
}

std::string Float(Rng& rng) {
  if (rng.Percent(10)) return "1.5";  // ties
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", static_cast<double>(rng.Below(3000000)) / 37.0);
  return buf;
}

template <typename T>
std::string Or(bool null, const T& v) {
  return null ? std::string("NULL") : absl::StrCat(v);
}

// One table's rows as VALUES tuples, with each row's shard-key value (for a direct load).
struct TableData {
  std::string name, columns;
  std::vector<std::string> tuples;
  std::vector<int64_t> keys;
};

struct DataSet {
  TableData regions, customers, orders, items;
  std::vector<int64_t> customer_ids;
};

const DataSet& Data() {
  static const DataSet* data = [] {
    auto* d = new DataSet;
    Rng rng(20240611);
    d->regions = {"regions", "id, name, code", {}, {}};
    const char* region_names[] = {"north", "south", "east", "west", "centre", "east", "isles"};
    for (int i = 1; i <= 8; ++i) {
      d->regions.tuples.push_back(absl::StrCat("(", i, ", ",
                                               i == 8 ? "NULL" : Quote(region_names[i - 1]), ", ",
                                               Quote(absl::StrCat("R", i % 3)), ")"));
      d->regions.keys.push_back(i);
    }

    d->customers = {"customers",
                    "id, name, tier, region_id, score, balance, rating, signup, last_seen, active",
                    {},
                    {}};
    const char* tiers[] = {"gold", "silver", "bronze", "", "Gold"};
    for (int i = 1; i <= 700; ++i) {
      int64_t id = i;
      if (i > 680) id = -(i - 680);              // negative keys
      if (i > 690) id = 9000000000000000LL + i;  // huge keys
      d->customer_ids.push_back(id);
      const int day = rng.Below(1500);
      char name[16];
      std::snprintf(name, sizeof(name), "cust_%02d", rng.Below(60));
      const std::string tuple = absl::StrCat(
          "(", id, ", ", rng.Percent(3) ? "NULL" : Quote(name), ", ",
          rng.Percent(12) ? "NULL" : Quote(tiers[rng.Below(5)]), ", ",
          Or(rng.Percent(5), 1 + rng.Below(8)), ", ", Or(rng.Percent(6), rng.Below(100)), ", ",
          rng.Percent(5) ? "NULL" : Money(rng, -500000, 500000), ", ",
          rng.Percent(4) ? "NULL" : Float(rng), ", ", Quote(Date(day)), ", ",
          rng.Percent(5) ? "NULL"
                         : Quote(absl::StrCat(Date(day + rng.Below(300)), " ", 10 + rng.Below(14),
                                              ":", 10 + rng.Below(50), ":", 10 + rng.Below(50))),
          ", ", rng.Percent(3) ? "NULL" : (rng.Below(3) != 0 ? "true" : "false"), ")");
      d->customers.tuples.push_back(tuple);
      d->customers.keys.push_back(id);
    }

    d->orders = {"orders", "id, customer_id, amount, qty, weight, status, placed", {}, {}};
    const char* statuses[] = {"new", "paid", "shipped", "cancelled", "paid"};
    for (int i = 1; i <= 2500; ++i) {
      const int64_t customer = rng.Percent(2)
                                   ? 100000 + rng.Below(50)
                                   : d->customer_ids[static_cast<size_t>(rng.Below(700))];
      d->orders.tuples.push_back(absl::StrCat(
          "(", i, ", ", customer, ", ", rng.Percent(3) ? "NULL" : Money(rng, 0, 99999), ", ",
          Or(rng.Percent(5), 1 + rng.Below(20)), ", ", rng.Percent(3) ? "NULL" : Float(rng), ", ",
          rng.Percent(6) ? "NULL" : Quote(statuses[rng.Below(5)]), ", ",
          Quote(Date(rng.Below(1200))), ")"));
      d->orders.keys.push_back(customer);
    }

    d->items = {
        "items", "id, sku, category, region_id, price, stock, ratio, added, discontinued", {}, {}};
    const char* categories[] = {"tools", "toys", "food", "books", "garden", "food"};
    for (int i = 1; i <= 1500; ++i) {
      const int64_t id = i <= 1490 ? i : 5000000000LL * i;
      char sku[16];
      std::snprintf(sku, sizeof(sku), "sku_%04d", 1500 - i);
      d->items.tuples.push_back(absl::StrCat(
          "(", id, ", ", Quote(sku), ", ",
          rng.Percent(8) ? "NULL" : Quote(categories[rng.Below(6)]), ", ",
          Or(rng.Percent(4), 1 + rng.Below(8)), ", ", Money(rng, 1, 50000), ", ",
          Or(rng.Percent(7), rng.Below(51)), ", ", rng.Percent(3) ? "NULL" : Float(rng), ", ",
          Quote(Date(rng.Below(1000))), ", ", rng.Below(5) == 0 ? "true" : "false", ")"));
      d->items.keys.push_back(id);
    }
    return d;
  }();
  return *data;
}

// Multi-row INSERTs of 50-200 rows (varying sizes, so batches straddle shards differently).
std::vector<std::string> InsertStatements(const TableData& t) {
  std::vector<std::string> out;
  size_t i = 0, batch = 50;
  while (i < t.tuples.size()) {
    const size_t end = std::min(t.tuples.size(), i + batch);
    std::vector<std::string> part(t.tuples.begin() + static_cast<ptrdiff_t>(i),
                                  t.tuples.begin() + static_cast<ptrdiff_t>(end));
    out.push_back(absl::StrCat("INSERT INTO ", t.name, " (", t.columns, ") VALUES ",
                               absl::StrJoin(part, ", ")));
    i = end;
    batch = batch >= 200 ? 50 : batch + 50;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The suite: one cluster, shardgate, and the reference server, loaded once

ShardedEnvOptions DifferentialOptions() {
  ShardedEnvOptions o;
  o.replicas = {0, 0, 0};  // reads on the primaries: no replication lag after writes
  o.extra_database_yaml = kYaml;
  return o;
}

class DifferentialTest : public ShardedSuite<DifferentialTest> {
 public:
  static ShardedEnvOptions Options() { return DifferentialOptions(); }

 protected:
  static void SetUpTestSuite() {
    ShardedSuite::SetUpTestSuite();
    if (env_ == nullptr) return;
    auto ref = PgServer::StartPrimary("app");
    if (!ref.ok()) {
      load_status_ = ref.status();
      return;
    }
    reference_ = std::move(*ref);
    load_status_ = Load();
  }
  static void TearDownTestSuite() {
    reference_.reset();
    ShardedSuite::TearDownTestSuite();
  }

  void SetUp() override {
    ShardedSuite::SetUp();
    ASSERT_OK(load_status_) << "schema or data did not load";
  }

  static absl::StatusOr<PgConn> ConnectReference() {
    return PgConn::Connect(reference_->ConnString("app", kScramUser, kScramPassword));
  }

  // Schema and data on both sides. Through shardgate first; when shardgate refuses DDL or a
  // multi-row INSERT, the step is redone directly on the shards (each row where the routing
  // library puts it) so that the read tests still run, and the refusal is reported by the tests
  // SchemaThroughShardgate / InsertThroughShardgate.
  static absl::Status Load() {
    ASSIGN_OR_RETURN(PgConn ref, ConnectReference());
    ASSIGN_OR_RETURN(PgConn proxy, env_->Connect());
    for (const std::string& ddl : Schema()) {
      RETURN_IF_ERROR(ref.Exec(ddl));
      const Result r = Capture(proxy.get(), PQexec(proxy.get(), ddl.c_str()));
      if (!r.ok) {
        ddl_errors_.push_back(absl::StrCat(ddl, ": ", r.Describe()));
        RETURN_IF_ERROR(env_->ExecOnPrimaries(
            absl::StrCat("DROP TABLE IF EXISTS ", ddl.substr(13, ddl.find(' ', 13) - 13))));
        RETURN_IF_ERROR(env_->ExecOnPrimaries(ddl));
      }
    }
    const DataSet& d = Data();
    for (const TableData* t : {&d.regions, &d.customers, &d.orders, &d.items}) {
      for (const std::string& insert : InsertStatements(*t)) {
        RETURN_IF_ERROR(ref.Exec(insert));
        const Result r = Capture(proxy.get(), PQexec(proxy.get(), insert.c_str()));
        if (!r.ok) {
          insert_errors_.push_back(absl::StrCat(insert.substr(0, 80), "...: ", r.Describe()));
          RETURN_IF_ERROR(LoadDirectly(*t));
          break;
        }
      }
    }
    return absl::OkStatus();
  }

  // Replaces `t`'s rows on the shards with the data set's, written straight to each primary.
  static absl::Status LoadDirectly(const TableData& t) {
    RETURN_IF_ERROR(env_->ExecOnPrimaries(absl::StrCat("TRUNCATE ", t.name)));
    if (t.name == "regions") {
      for (const std::string& insert : InsertStatements(t)) {
        RETURN_IF_ERROR(env_->ExecOnPrimaries(insert));
      }
      return absl::OkStatus();
    }
    std::vector<std::vector<std::string>> per_shard(3);
    for (size_t i = 0; i < t.tuples.size(); ++i) {
      const int shard = env_->ShardOf(t.name, t.keys[i]);
      if (shard < 0) return absl::InternalError(absl::StrCat("no shard for ", t.name, " key"));
      per_shard[static_cast<size_t>(shard)].push_back(t.tuples[i]);
    }
    for (int s = 0; s < 3; ++s) {
      if (per_shard[static_cast<size_t>(s)].empty()) continue;
      ASSIGN_OR_RETURN(PgConn direct, env_->ConnectDirect({s, -1}));
      RETURN_IF_ERROR(
          direct.Exec(absl::StrCat("INSERT INTO ", t.name, " (", t.columns, ") VALUES ",
                                   absl::StrJoin(per_shard[static_cast<size_t>(s)], ", "))));
    }
    return absl::OkStatus();
  }

  // Runs every case on both sides and compares.
  void RunCorpus(const std::vector<Case>& cases, const char* what) {
    ASSERT_OK_AND_ASSIGN(PgConn ref, ConnectReference());
    ASSERT_OK_AND_ASSIGN(PgConn proxy, env().Connect());
    Differ differ;
    for (const Case& c : cases) {
      const Result want = RunCase(ref, c);
      const Result got = RunCase(proxy, c);
      differ.Check(c, want, got);
      if (!env().ProxyAlive()) {
        ADD_FAILURE() << "shardgate died on: " << c.sql;
        return;
      }
      if (PQstatus(proxy.get()) != CONNECTION_OK) {
        ADD_FAILURE() << "shardgate closed the connection after: " << c.sql;
        ASSERT_OK_AND_ASSIGN(proxy, env().Connect());
      }
    }
    differ.Finish(what);
  }

  static inline std::unique_ptr<PgServer> reference_;
  static inline absl::Status load_status_;
  static inline std::vector<std::string> ddl_errors_, insert_errors_;
};

// ---------------------------------------------------------------------------------------------
// The corpus

const char* const kCustomerFilters[] = {
    "",
    "WHERE score > 50",
    "WHERE score BETWEEN 10 AND 20",
    "WHERE tier IS NULL",
    "WHERE tier IN ('gold', 'silver')",
    "WHERE id IN (1, 2, 3, 50, 400, -3, 9000000000000000695)",
    "WHERE id = 17",
    "WHERE balance < 0 AND active",
    "WHERE name LIKE 'cust_1%'",
    "WHERE signup >= '2021-06-01' AND last_seen IS NOT NULL",
    "WHERE rating > 50000 OR score IS NULL",
    "WHERE id > 1000 AND id < 2000",  // empty
    "WHERE region_id <> 3 AND NOT active",
    "WHERE tier = ''",
};

std::vector<Case> FilterCases() {
  std::vector<Case> out;
  for (const char* f : kCustomerFilters) {
    out.push_back(Unordered(absl::StrCat("SELECT * FROM customers ", f)));
    out.push_back(Unordered(absl::StrCat("SELECT id, name, tier, balance FROM customers ", f)));
  }
  for (const char* f : {"", "WHERE amount > 900", "WHERE status IS NULL OR qty IS NULL",
                        "WHERE customer_id IN (5, 6, 7, 8, 100003)", "WHERE placed < '2020-02-01'",
                        "WHERE weight = 1.5 AND status <> 'new'"}) {
    out.push_back(Unordered(absl::StrCat("SELECT * FROM orders ", f)));
  }
  for (const char* f :
       {"", "WHERE category = 'food'", "WHERE stock IS NULL", "WHERE id > 1400",
        "WHERE discontinued AND price > 400", "WHERE id IN (3, 4, 5, 1000, 7450000000000)"}) {
    out.push_back(Unordered(absl::StrCat("SELECT * FROM items ", f)));
  }
  return out;
}

std::vector<Case> OrderByCases() {
  std::vector<Case> out;
  const char* columns[] = {"score",  "tier",      "balance", "rating",   "name",
                           "signup", "last_seen", "active",  "region_id"};
  const char* directions[] = {"", " DESC", " NULLS FIRST", " DESC NULLS LAST"};
  const char* limits[] = {"",
                          " LIMIT 0",
                          " LIMIT 1",
                          " LIMIT 7",
                          " LIMIT 100",
                          " LIMIT 7 OFFSET 3",
                          " LIMIT 100 OFFSET 50",
                          " OFFSET 50",
                          " LIMIT 5 OFFSET 100000",
                          " OFFSET 0"};
  int n = 0;
  for (const char* col : columns) {
    for (const char* dir : directions) {
      // The primary key as the last sort key: every row has its place, LIMIT picks exact rows.
      for (int k : {n % 10, (n + 5) % 10}) {
        out.push_back(Total(absl::StrCat("SELECT id, ", col, ", name FROM customers ORDER BY ", col,
                                         dir, ", id", k % 2 == 0 ? "" : " DESC", limits[k])));
      }
      // Ties without a tie-breaker: only the sort key's sequence is defined.
      out.push_back(
          Keys(absl::StrCat("SELECT id, ", col, " FROM customers ORDER BY ", col, dir), {1}));
      ++n;
    }
  }
  // Two sort keys, a sort key not in the select list, positions, aliases, expressions.
  out.push_back(Keys("SELECT tier, score, id FROM customers ORDER BY tier, score DESC", {0, 1}));
  out.push_back(Total(
      "SELECT tier, score, id FROM customers ORDER BY tier NULLS FIRST, score DESC, id LIMIT 40"));
  out.push_back(
      Total("SELECT id, name FROM customers ORDER BY score DESC NULLS LAST, id LIMIT 10"));
  out.push_back(Total("SELECT name FROM customers ORDER BY balance, id OFFSET 600"));
  out.push_back(Total("SELECT id, score AS s FROM customers ORDER BY 2 DESC, 1 LIMIT 20"));
  out.push_back(
      Total("SELECT id, score AS s FROM customers ORDER BY s NULLS FIRST, id LIMIT 20 "
            "OFFSET 5"));
  out.push_back(Total("SELECT id AS k, rating FROM customers ORDER BY rating DESC, k LIMIT 15"));
  out.push_back(Total("SELECT id FROM customers ORDER BY score * -1 NULLS FIRST, id LIMIT 10"));
  out.push_back(Total("SELECT id, name FROM customers ORDER BY lower(name) DESC, id LIMIT 10"));
  out.push_back(
      Total("SELECT id, score FROM customers WHERE score > 30 ORDER BY score, id DESC "
            "LIMIT 20"));
  out.push_back(Total("SELECT * FROM customers ORDER BY id"));
  out.push_back(Total("SELECT * FROM customers ORDER BY signup DESC, id LIMIT 25 OFFSET 25"));
  for (const char* col : {"amount", "status", "placed", "weight", "qty"}) {
    for (const char* dir : {" DESC NULLS LAST", " NULLS FIRST"}) {
      out.push_back(Total(absl::StrCat("SELECT id, customer_id, ", col, " FROM orders ORDER BY ",
                                       col, dir, ", id LIMIT 25 OFFSET 10")));
    }
  }
  for (const char* col : {"price", "category", "added", "ratio", "stock"}) {
    out.push_back(Total(absl::StrCat("SELECT id, sku, ", col, " FROM items ORDER BY ", col,
                                     " DESC, sku LIMIT 30")));
  }
  return out;
}

std::vector<Case> AggregateCases() {
  std::vector<Case> out;
  const char* aggregates[] = {
      "count(*)",       "count(score)", "count(tier)",  "count(balance)", "sum(score)",
      "sum(balance)",   "sum(rating)",  "min(score)",   "max(score)",     "min(balance)",
      "max(balance)",   "min(rating)",  "max(rating)",  "min(name)",      "max(name)",
      "min(tier)",      "max(tier)",    "min(signup)",  "max(signup)",    "min(last_seen)",
      "max(last_seen)", "avg(score)",   "avg(balance)", "avg(rating)",    "min(id)",
      "max(id)",        "sum(id)",      "avg(id)",      "sum(region_id)", "count(active)"};
  for (const char* a : aggregates) {
    out.push_back(Unordered(absl::StrCat("SELECT ", a, " FROM customers")));
  }
  const std::string all = absl::StrJoin(aggregates, ", ");
  for (const char* f : kCustomerFilters) {
    out.push_back(Unordered(absl::StrCat("SELECT ", all, " FROM customers ", f)));
  }
  out.push_back(
      Unordered("SELECT count(*) AS n, sum(score) AS total, avg(score) AS mean "
                "FROM customers WHERE active"));
  const std::string orders_aggs =
      "count(*), count(amount), sum(amount), avg(amount), min(amount), max(amount), sum(qty), "
      "avg(qty), sum(weight), avg(weight), min(placed), max(placed), min(status), max(status)";
  for (const char* f : {"", "WHERE status = 'paid'", "WHERE qty > 100", "WHERE customer_id > 0"}) {
    out.push_back(Unordered(absl::StrCat("SELECT ", orders_aggs, " FROM orders ", f)));
  }
  const std::string items_aggs =
      "count(*), sum(price), avg(price), min(price), max(stock), sum(stock), avg(stock), "
      "avg(ratio), min(sku), max(added), count(category)";
  for (const char* f : {"", "WHERE discontinued", "WHERE id > 1000"}) {
    out.push_back(Unordered(absl::StrCat("SELECT ", items_aggs, " FROM items ", f)));
  }
  return out;
}

std::vector<Case> GroupByCases() {
  std::vector<Case> out;
  const std::string aggs =
      "count(*), count(score), sum(score), min(balance), max(balance), avg(score), avg(balance), "
      "sum(rating), avg(rating), min(name), max(signup)";
  for (const char* g : {"tier", "active", "region_id", "tier, active", "region_id, tier"}) {
    out.push_back(Total(
        absl::StrCat("SELECT ", g, ", ", aggs, " FROM customers GROUP BY ", g, " ORDER BY ", g)));
    out.push_back(Unordered(absl::StrCat("SELECT ", g, ", count(*) FROM customers GROUP BY ", g)));
    for (const char* having :
         {"count(*) > 20", "sum(score) > 2000 AND min(balance) < 0", "avg(balance) > 0",
          "max(rating) >= 20000 OR count(score) < 30", "min(name) <> 'cust_00'"}) {
      out.push_back(Total(absl::StrCat("SELECT ", g,
                                       ", count(*), sum(score), avg(balance) FROM "
                                       "customers GROUP BY ",
                                       g, " HAVING ", having, " ORDER BY ", g)));
    }
  }
  out.push_back(
      Total("SELECT tier, count(*) FROM customers GROUP BY tier ORDER BY count(*) DESC, tier"));
  out.push_back(Unordered("SELECT count(*), sum(score) FROM customers GROUP BY region_id"));
  out.push_back(
      Total("SELECT count(*), sum(score) FROM customers GROUP BY region_id ORDER BY "
            "region_id NULLS FIRST"));
  out.push_back(
      Total("SELECT tier, avg(score) FROM customers GROUP BY tier HAVING avg(score) > 49 "
            "ORDER BY 1"));
  out.push_back(
      Total("SELECT region_id, tier, count(*) FROM customers GROUP BY region_id, tier "
            "HAVING count(*) >= 10 ORDER BY 1, 2"));
  out.push_back(
      Total("SELECT tier, count(*) FROM customers GROUP BY tier HAVING count(*) > 100000 "
            "ORDER BY 1"));
  out.push_back(
      Total("SELECT region_id, max(signup) FROM customers GROUP BY region_id HAVING "
            "max(signup) > '2024-01-01' OR min(score) IS NULL ORDER BY 1"));
  out.push_back(
      Total("SELECT region_id, count(*) FROM customers GROUP BY region_id HAVING "
            "count(*) > 5 ORDER BY count(*) DESC, region_id LIMIT 3 OFFSET 1"));
  out.push_back(
      Total("SELECT customer_id, count(*), sum(amount) FROM orders GROUP BY customer_id "
            "HAVING count(*) >= 5 ORDER BY customer_id"));
  out.push_back(
      Total("SELECT status, count(*), sum(amount), avg(amount), avg(qty), sum(weight) "
            "FROM orders GROUP BY status ORDER BY status NULLS FIRST"));
  out.push_back(
      Total("SELECT placed, count(*) FROM orders GROUP BY placed ORDER BY count(*) DESC, "
            "placed LIMIT 10"));
  out.push_back(
      Total("SELECT status, qty, count(*), max(amount) FROM orders GROUP BY status, qty "
            "ORDER BY 2 DESC, 1 LIMIT 30"));
  out.push_back(
      Total("SELECT category, count(*), sum(price), avg(price), min(stock), max(stock), "
            "avg(ratio) FROM items GROUP BY category ORDER BY 1"));
  out.push_back(
      Total("SELECT discontinued, category, avg(stock) FROM items GROUP BY 1, 2 "
            "HAVING avg(stock) < 26 ORDER BY 1, 2"));
  return out;
}

std::vector<Case> DistinctUnionCases() {
  return {
      Unordered("SELECT DISTINCT tier FROM customers"),
      Total("SELECT DISTINCT tier FROM customers ORDER BY tier"),
      Total("SELECT DISTINCT tier, active FROM customers ORDER BY 1, 2"),
      Total("SELECT DISTINCT region_id FROM customers ORDER BY region_id DESC NULLS LAST LIMIT 3"),
      Total("SELECT DISTINCT status FROM orders ORDER BY status NULLS FIRST"),
      Total("SELECT DISTINCT customer_id FROM orders WHERE amount > 900 ORDER BY 1"),
      Total("SELECT DISTINCT category, discontinued FROM items ORDER BY 2, 1 LIMIT 5 OFFSET 2"),
      Total("SELECT DISTINCT score / 10 AS bucket FROM customers ORDER BY bucket"),
      Total("SELECT DISTINCT placed FROM orders ORDER BY placed DESC LIMIT 10"),
      Unordered("SELECT DISTINCT name, tier FROM customers WHERE score < 10"),
      Unordered("SELECT DISTINCT tier FROM customers WHERE id > 1000 AND id < 2000"),
  };
}

std::vector<Case> JoinCases() {
  std::vector<Case> out = {
      Unordered("SELECT c.id, c.name, o.id, o.amount FROM customers c JOIN orders o ON "
                "o.customer_id = c.id WHERE o.amount > 900"),
      Total("SELECT c.id, c.name, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = "
            "c.id ORDER BY o.amount DESC NULLS LAST, o.id LIMIT 15"),
      Total("SELECT c.tier, count(*), sum(o.amount), avg(o.qty) FROM customers c JOIN orders o ON "
            "o.customer_id = c.id GROUP BY c.tier ORDER BY c.tier"),
      Total("SELECT c.id, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
            "GROUP BY c.id HAVING count(o.id) = 0 ORDER BY c.id"),
      Total("SELECT c.id, o.id FROM customers c JOIN orders o ON c.id = o.customer_id AND o.status "
            "= 'paid' WHERE c.active ORDER BY 2"),
      Total("SELECT o.id, c.name, r.name FROM orders o JOIN customers c ON c.id = o.customer_id "
            "JOIN regions r ON r.id = c.region_id WHERE o.qty > 18 ORDER BY o.id"),
      Total("SELECT r.name, count(*) FROM customers c JOIN regions r ON r.id = c.region_id GROUP "
            "BY r.name ORDER BY r.name"),
      Total("SELECT i.id, i.sku, r.name FROM items i JOIN regions r ON r.id = i.region_id WHERE "
            "i.stock < 3 ORDER BY i.id"),
      Unordered("SELECT i.category, r.code, count(*) FROM items i LEFT JOIN regions r ON r.id = "
                "i.region_id GROUP BY i.category, r.code"),
      Total("SELECT r.id, r.name FROM regions r ORDER BY r.id"),
      Unordered("SELECT count(*), min(name), max(code) FROM regions"),
      Total("SELECT c.id, c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE "
            "o.customer_id = c.id AND o.amount > 950) ORDER BY c.id"),
      Total("SELECT c.id FROM customers c WHERE c.id IN (SELECT customer_id FROM orders WHERE "
            "status = 'cancelled') ORDER BY 1"),
      Unordered("SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE "
                "c.id = o.customer_id)"),
  };
  // Keyed statements (one shard) and key lists spanning shards.
  for (int64_t k : std::vector<int64_t>{1, 2, 17, 250, 699, -5, 9000000000000000695LL, 123456}) {
    out.push_back(Unordered(absl::StrCat("SELECT * FROM customers WHERE id = ", k)));
    out.push_back(Total(
        absl::StrCat("SELECT id, amount FROM orders WHERE customer_id = ", k, " ORDER BY id")));
    out.push_back(Unordered(absl::StrCat(
        "SELECT count(*), sum(amount), avg(qty) FROM orders WHERE customer_id = ", k)));
  }
  out.push_back(
      Total("SELECT id, name FROM customers WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) "
            "ORDER BY id"));
  out.push_back(
      Total("SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id "
            "WHERE c.id IN (11, 12, 13, 14) ORDER BY 2"));
  return out;
}

std::vector<Case> EdgeCases() {
  return {
      Unordered("SELECT * FROM customers WHERE id > 1000 AND id < 0"),
      Unordered("SELECT count(*), sum(score), avg(score), min(name), max(signup) FROM customers "
                "WHERE false"),
      Unordered("SELECT count(*) FROM customers WHERE score > 1000"),
      Unordered("SELECT sum(balance), avg(rating), count(balance) FROM customers WHERE balance IS "
                "NULL"),
      Unordered("SELECT tier, count(*) FROM customers WHERE score > 1000 GROUP BY tier"),
      Total("SELECT id FROM customers ORDER BY id LIMIT 0"),
      Total("SELECT id FROM customers ORDER BY id OFFSET 100000"),
      Total("SELECT id FROM customers ORDER BY id LIMIT ALL"),
      Total("SELECT id FROM customers ORDER BY id LIMIT 3 OFFSET 0"),
      Total("SELECT id FROM customers ORDER BY id FETCH FIRST 5 ROWS ONLY"),
      Total("SELECT id FROM customers ORDER BY id OFFSET 10 ROWS FETCH NEXT 3 ROWS ONLY"),
      Unordered("SELECT count(*) FROM customers LIMIT 0"),
      Unordered("SELECT sum(score) FROM customers OFFSET 1"),
      Unordered("SELECT id FROM customers LIMIT 0"),
      Unordered("SELECT 1 AS one FROM customers WHERE id = 1"),
      Total("SELECT id, score * 2 + 1 AS s2, upper(name), coalesce(tier, '?') FROM customers WHERE "
            "score < 5 ORDER BY id"),
      Unordered("SELECT max(id), min(id) FROM customers"),
      Unordered("SELECT max(id), min(id), count(*) FROM items"),
      Total("SELECT id, balance FROM customers WHERE balance IS NULL ORDER BY id"),
      Total("SELECT tier, count(*) FROM customers GROUP BY tier ORDER BY tier LIMIT 2 OFFSET 4"),
  };
}

std::vector<Case> ExtendedCases() {
  std::vector<Case> out;
  const Case paged = Total(
      "SELECT id, name, score FROM customers WHERE score > $1 ORDER BY score, id LIMIT $2 "
      "OFFSET $3");
  for (const char* score : {"0", "50", "99", "1000"}) {
    for (const auto& [limit, offset] : std::vector<std::pair<std::string, std::string>>{
             {"5", "0"}, {"7", "3"}, {"100", "50"}, {"0", "0"}, {"10", "100000"}}) {
      out.push_back(Params(paged, {score, limit, offset}));
    }
  }
  for (const char* tier : {"gold", "silver", "bronze", "", "nope"}) {
    out.push_back(Params(Unordered("SELECT count(*), sum(balance), avg(balance), min(name), "
                                   "max(rating) FROM customers WHERE tier = $1"),
                         {tier}));
  }
  for (const char* list :
       {"{1,2,3}", "{4,5,6,7,8,9,10,11,12}", "{-1,-2,9000000000000000691}", "{}"}) {
    out.push_back(Params(
        Total("SELECT id, tier FROM customers WHERE id = ANY($1::bigint[]) ORDER BY id"), {list}));
  }
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"2020-01-01", "2020-12-31"},
                                                        {"2021-03-01", "2021-03-31"},
                                                        {"2019-01-01", "2030-01-01"},
                                                        {"2030-01-01", "2031-01-01"}}) {
    out.push_back(Params(Total("SELECT tier, count(*) FROM customers WHERE signup BETWEEN $1 AND "
                               "$2 GROUP BY tier ORDER BY tier"),
                         {from, to}));
  }
  for (const char* n : {"0", "70", "85", "1000"}) {
    out.push_back(Params(Total("SELECT region_id, count(*) FROM customers GROUP BY region_id "
                               "HAVING count(*) > $1 ORDER BY region_id"),
                         {n}));
  }
  for (const auto& [amount, limit] : std::vector<std::pair<std::string, std::string>>{
           {"900", "10"}, {"0", "5"}, {"999.5", "100"}, {"100000", "3"}}) {
    out.push_back(Params(Total("SELECT c.id, o.id, o.amount FROM customers c JOIN orders o ON "
                               "o.customer_id = c.id WHERE o.amount > $1 ORDER BY o.id LIMIT $2"),
                         {amount, limit}));
  }
  for (const char* k : {"1", "42", "-2", "9000000000000000700", "555555"}) {
    out.push_back(Params(Unordered("SELECT * FROM customers WHERE id = $1"), {k}));
  }
  for (const char* k : {"3", "77", "100010", "698"}) {
    out.push_back(
        Params(Total("SELECT id, amount FROM orders WHERE customer_id = $1 ORDER BY id"), {k}));
  }
  for (const char* q : {"0", "10", "19"}) {
    out.push_back(
        Params(Total("SELECT DISTINCT status FROM orders WHERE qty > $1 ORDER BY 1"), {q}));
  }
  for (const auto& [cat, price] : std::vector<std::pair<std::string, std::string>>{
           {"food", "100"}, {"toys", "499.99"}, {"books", "0"}, {"none", "1000"}}) {
    out.push_back(Params(Total("SELECT id, price FROM items WHERE category = $1 AND price < $2 "
                               "ORDER BY price DESC, id LIMIT 10"),
                         {cat, price}));
  }
  for (const auto& [day, sum] : std::vector<std::pair<std::string, std::string>>{
           {"2020-06-01", "1000"}, {"2022-01-01", "50000"}, {"2019-01-01", "0"}}) {
    out.push_back(Params(Total("SELECT status, sum(amount) FROM orders WHERE placed >= $1 GROUP BY "
                               "status HAVING sum(amount) > $2 ORDER BY 1"),
                         {day, sum}));
  }
  for (const auto& [stock, limit] :
       std::vector<std::pair<std::string, std::string>>{{"3", "20"}, {"0", "5"}, {"60", "1000"}}) {
    out.push_back(Params(Total("SELECT id FROM items WHERE stock IS NULL OR stock < $1 ORDER BY id "
                               "LIMIT $2"),
                         {stock, limit}));
  }
  return out;
}

// Named prepared statements, each executed with two parameter sets.
struct PreparedCase {
  Case c;  // sql and order; params unused
  std::vector<std::vector<std::string>> runs;
};

std::vector<PreparedCase> PreparedCases() {
  return {
      {Total("SELECT id, score FROM customers WHERE score >= $1 ORDER BY score DESC, id LIMIT $2"),
       {{"90", "10"}, {"10", "30"}}},
      {Unordered("SELECT count(*), sum(amount), avg(amount) FROM orders WHERE status = $1"),
       {{"paid"}, {"new"}}},
      {Total("SELECT tier, count(*), avg(balance) FROM customers WHERE region_id = $1 GROUP BY "
             "tier ORDER BY tier"),
       {{"2"}, {"7"}}},
      {Unordered("SELECT * FROM customers WHERE id = $1"), {{"8"}, {"300"}}},
      {Total("SELECT c.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE "
             "c.score = $1 ORDER BY o.id"),
       {{"42"}, {"7"}}},
      {Total("SELECT DISTINCT category FROM items WHERE price > $1 ORDER BY 1"), {{"10"}, {"499"}}},
  };
}

// Statements whose exact merge is impossible: documented 0A000 refusals with a hint.
std::vector<std::string> RefusalCases() {
  return {
      "SELECT id, row_number() OVER () FROM customers",
      "SELECT id, rank() OVER (ORDER BY score) FROM customers",
      "SELECT string_agg(name, ',') FROM customers",
      "SELECT array_agg(id) FROM customers",
      "SELECT tier, array_agg(id) FROM customers GROUP BY tier",
      "SELECT DISTINCT ON (tier) tier, id FROM customers ORDER BY tier, id",
      "SELECT tier FROM customers INTERSECT SELECT category FROM items",
      "SELECT tier FROM customers EXCEPT SELECT category FROM items",
      "SELECT count(DISTINCT tier) FROM customers",
      "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM customers",
      "SELECT o.id, i.id FROM orders o JOIN items i ON i.stock = o.qty",
      "SELECT c.id, i.sku FROM customers c JOIN items i ON i.id = c.id",
      "SELECT sum(score) / count(*) FROM customers",
      "SELECT tier, count(*) FROM customers GROUP BY ROLLUP (tier)",
      // Documented refusals of issue 5's fan-out (README "Statements across shards"): UNION
      // across sharded tables (the planner asks every sharded table to be co-located), a
      // reference table in a UNION run on every shard, subqueries that need every shard's rows.
      "SELECT id FROM customers WHERE score > 95 UNION ALL SELECT id FROM items WHERE "
                "stock = 0",
      "SELECT tier FROM customers UNION SELECT category FROM items",
      "SELECT tier AS t FROM customers UNION SELECT category FROM items ORDER BY 1",
      "SELECT customer_id FROM orders WHERE amount > 990 UNION SELECT id FROM customers "
            "WHERE score = 0 ORDER BY 1 LIMIT 10",
      "SELECT id FROM customers WHERE score > 95 UNION ALL SELECT customer_id FROM "
                "orders WHERE qty = 20",
      "SELECT id FROM customers WHERE score < 3 UNION SELECT customer_id FROM orders "
                "WHERE qty = 1",
      "SELECT id, 'c' AS src FROM customers WHERE id < 5 UNION ALL SELECT customer_id, 'o' "
            "FROM orders WHERE customer_id < 5 ORDER BY 1, 2 LIMIT 20",
      "SELECT name FROM regions UNION ALL SELECT tier FROM customers WHERE score = 1",
      "SELECT id, 'c' AS src FROM customers WHERE id < 5 UNION ALL SELECT id, 'i' FROM "
            "items WHERE id < 5 ORDER BY 1, 2",
      "SELECT t.customer_id, t.total FROM (SELECT customer_id, sum(amount) AS total FROM "
            "orders GROUP BY customer_id) t WHERE t.total > 5000 ORDER BY t.customer_id",
      "SELECT count(*) FROM (SELECT customer_id FROM orders GROUP BY customer_id HAVING "
                "count(*) > 3) s",
  };
}

// ---------------------------------------------------------------------------------------------
// The tests

TEST_F(DifferentialTest, CorpusIsLargeEnough) {
  size_t prepared_runs = 0;
  for (const auto& p : PreparedCases()) prepared_runs += p.runs.size();
  const size_t total = FilterCases().size() + OrderByCases().size() + AggregateCases().size() +
                       GroupByCases().size() + DistinctUnionCases().size() + JoinCases().size() +
                       EdgeCases().size() + ExtendedCases().size() + prepared_runs +
                       RefusalCases().size();
  std::cout << "differential corpus: " << total << " queries (" << ExtendedCases().size()
            << " extended, " << prepared_runs << " prepared runs, " << RefusalCases().size()
            << " refusals) + the write and COPY steps\n";
  EXPECT_GE(total, 300u);
  EXPECT_GE(ExtendedCases().size() + prepared_runs, 60u);
}

TEST_F(DifferentialTest, SchemaThroughShardgate) {
  EXPECT_THAT(ddl_errors_, ::testing::IsEmpty())
      << "CREATE TABLE through shardgate failed (tables were created on the shards directly)";
}

TEST_F(DifferentialTest, MultiRowInsertThroughShardgate) {
  EXPECT_THAT(insert_errors_, ::testing::IsEmpty())
      << "multi-row INSERT through shardgate failed (rows were loaded on the shards directly)";
  // Wherever the rows came from, the sharded tables hold exactly the reference's rows.
  std::vector<Case> cases;
  for (const char* t : {"regions", "customers", "orders", "items"}) {
    cases.push_back(Total(absl::StrCat("SELECT count(*) FROM ", t)));
  }
  RunCorpus(cases, "row counts");
}

TEST_F(DifferentialTest, Filters) { RunCorpus(FilterCases(), "filter queries"); }
TEST_F(DifferentialTest, OrderByLimitOffset) { RunCorpus(OrderByCases(), "ORDER BY queries"); }
TEST_F(DifferentialTest, Aggregates) { RunCorpus(AggregateCases(), "aggregate queries"); }
TEST_F(DifferentialTest, GroupByHaving) { RunCorpus(GroupByCases(), "GROUP BY queries"); }
TEST_F(DifferentialTest, DistinctAndUnion) {
  RunCorpus(DistinctUnionCases(), "DISTINCT/UNION queries");
}
TEST_F(DifferentialTest, JoinsAndKeyedQueries) { RunCorpus(JoinCases(), "join/keyed queries"); }
TEST_F(DifferentialTest, EdgeCases) { RunCorpus(EdgeCases(), "edge cases"); }
TEST_F(DifferentialTest, ExtendedProtocol) { RunCorpus(ExtendedCases(), "extended queries"); }

TEST_F(DifferentialTest, NamedPreparedStatementsRunTwice) {
  ASSERT_OK_AND_ASSIGN(PgConn ref, ConnectReference());
  ASSERT_OK_AND_ASSIGN(PgConn proxy, env().Connect());
  Differ differ;
  int n = 0;
  for (const PreparedCase& p : PreparedCases()) {
    const std::string name = absl::StrCat("diff_", n++);
    const int nparams = static_cast<int>(p.runs.front().size());
    Result prepared[2];
    int side = 0;
    for (const PgConn* conn : {&ref, &proxy}) {
      prepared[side++] = Capture(
          conn->get(), PQprepare(conn->get(), name.c_str(), p.c.sql.c_str(), nparams, nullptr));
    }
    ASSERT_TRUE(prepared[0].ok) << p.c.sql << ": " << prepared[0].Describe();
    if (!prepared[1].ok) {
      ADD_FAILURE() << "PQprepare through shardgate: " << p.c.sql << ": " << prepared[1].Describe();
      continue;
    }
    for (const auto& params : p.runs) {
      std::vector<const char*> values;
      for (const auto& v : params) values.push_back(v.c_str());
      Result results[2];
      side = 0;
      for (const PgConn* conn : {&ref, &proxy}) {
        results[side++] = Capture(conn->get(), PQexecPrepared(conn->get(), name.c_str(), nparams,
                                                              values.data(), nullptr, nullptr, 0));
      }
      Case c = p.c;
      c.params = params;
      differ.Check(c, results[0], results[1]);
    }
  }
  differ.Finish("prepared executions");
}

TEST_F(DifferentialTest, UnmergeableStatementsAreRefusedWith0A000AndAHint) {
  ASSERT_OK_AND_ASSIGN(PgConn ref, ConnectReference());
  ASSERT_OK_AND_ASSIGN(PgConn proxy, env().Connect());
  for (const std::string& sql : RefusalCases()) {
    const Result want = RunCase(ref, Unordered(sql));
    EXPECT_TRUE(want.ok) << "corpus bug, the reference refuses: " << sql << ": " << want.Describe();
    const Result got = RunCase(proxy, Unordered(sql));
    EXPECT_EQ(got.sqlstate, "0A000") << sql << "\n  got: " << got.Describe();
    if (got.sqlstate == "0A000") EXPECT_FALSE(got.hint.empty()) << sql << ": no hint";
  }
  // A refusal is a statement error: the session goes on.
  EXPECT_EQ(RunCase(proxy, Unordered("SELECT count(*) FROM regions")).Describe(),
            RunCase(ref, Unordered("SELECT count(*) FROM regions")).Describe());
}

// Writes on several shards: every statement's answer (RETURNING rows, affected-row counts), then
// the whole table, must match the reference.
TEST_F(DifferentialTest, WritesOnEveryShard) {
  ASSERT_OK_AND_ASSIGN(PgConn ref, ConnectReference());
  ASSERT_OK_AND_ASSIGN(PgConn proxy, env().Connect());
  Rng rng(77);
  std::vector<std::string> tuples;
  for (int i = 1; i <= 120; ++i) {
    tuples.push_back(absl::StrCat("(", i * 13, ", ", rng.Below(6), ", ", Money(rng, -10000, 90000),
                                  ", ", rng.Percent(10) ? "NULL" : Quote(absl::StrCat("m", i % 9)),
                                  ", ", rng.Below(4) == 0 ? "true" : "false", ")"));
  }
  auto insert = [&tuples](size_t from, size_t to, const std::string& returning) {
    return absl::StrCat("INSERT INTO ledger (id, acct, amount, memo, flag) VALUES ",
                        absl::StrJoin(tuples.begin() + static_cast<ptrdiff_t>(from),
                                      tuples.begin() + static_cast<ptrdiff_t>(to), ", "),
                        returning);
  };
  std::vector<Case> steps = {
      Unordered("TRUNCATE ledger"),
      Unordered(insert(0, 60, "")),
      Unordered(insert(60, 100, " RETURNING id, acct, amount")),
      Unordered(insert(100, 120, " RETURNING *")),
      Unordered("UPDATE ledger SET amount = amount * 2 WHERE acct = 3"),
      Unordered("UPDATE ledger SET memo = 'big' WHERE amount > 500 RETURNING id, memo, amount"),
      Unordered("DELETE FROM ledger WHERE flag"),
      Unordered("DELETE FROM ledger WHERE id IN (13, 26, 39, 52, 65, 78) RETURNING *"),
      Unordered("UPDATE ledger SET acct = acct + 10 WHERE id = 91 RETURNING acct"),
      Unordered("UPDATE ledger SET memo = NULL WHERE memo = 'm1'"),
      Unordered("DELETE FROM ledger WHERE amount < -50 RETURNING id"),
      Unordered("INSERT INTO ledger (id, acct, amount, memo, flag) VALUES (100001, 1, 1.50, 'p', "
                "true), (100002, 2, 2.50, 'q', false), (100003, 3, 3.50, NULL, NULL) RETURNING "
                "id, memo"),
      Params(Unordered("UPDATE ledger SET amount = amount + $1 WHERE acct = $2"), {"0.25", "2"}),
      Params(Unordered("DELETE FROM ledger WHERE memo = $1"), {"m4"}),
      Unordered("UPDATE ledger SET flag = NOT flag WHERE id > 100000 AND id < 200000"),
      Unordered("DELETE FROM ledger WHERE id > 1000000"),  // nothing
      Total("SELECT * FROM ledger ORDER BY id"),
      Unordered("SELECT acct, count(*), sum(amount) FROM ledger GROUP BY acct"),
  };
  Differ differ;
  for (const Case& c : steps) differ.Check(c, RunCase(ref, c), RunCase(proxy, c));
  differ.Finish("write steps");
}

// A multi-row INSERT spanning shards with its values as Bind parameters is a documented
// refusal (each shard would get parameters its rows do not use); nothing is written.
TEST_F(DifferentialTest, MultiRowInsertWithParametersSpanningShardsIsRefused) {
  ASSERT_OK_AND_ASSIGN(PgConn proxy, env().Connect());
  const Outcome o = RunParams(proxy,
                              "INSERT INTO ledger (id, acct, amount, memo, flag) VALUES ($1, 1, "
                              "1.50, 'p', true), ($2, 2, $4, 'q', false), ($3, 3, 3.50, $5, NULL)",
                              {"200001", "200002", "200003", "2.75", "r"});
  EXPECT_EQ(o.sqlstate, "0A000") << o.Describe();
  EXPECT_THAT(o.hint, ::testing::Not(::testing::IsEmpty())) << o.Describe();
  EXPECT_EQ(RunSql(proxy, "SELECT count(*) FROM ledger WHERE id > 200000").Scalar(), "0");
}

// COPY FROM STDIN in text and CSV format, sent in chunks that cut rows anywhere.
Result CopyIn(PGconn* conn, const std::string& sql, const std::string& data) {
  PgResult start(PQexec(conn, sql.c_str()));
  if (PQresultStatus(start.get()) != PGRES_COPY_IN) return Capture(conn, start.release());
  for (size_t at = 0; at < data.size(); at += 997) {
    const std::string_view chunk = std::string_view(data).substr(at, 997);
    if (PQputCopyData(conn, chunk.data(), static_cast<int>(chunk.size())) != 1) break;
  }
  PQputCopyEnd(conn, nullptr);
  Result last;
  last.message = "no result after COPY";
  while (PGresult* r = PQgetResult(conn)) last = Capture(conn, r);
  return last;
}

TEST_F(DifferentialTest, CopyFromStdinTextAndCsv) {
  ASSERT_OK_AND_ASSIGN(PgConn ref, ConnectReference());
  ASSERT_OK_AND_ASSIGN(PgConn proxy, env().Connect());
  Rng rng(4242);
  std::string text, csv = "id,label,n,x,d\n";
  for (int i = 1; i <= 600; ++i) {
    const int64_t id = i % 50 == 0 ? -i : i;
    const std::string label = rng.Percent(5) ? "\\N" : absl::StrCat("lab\\t", i % 17, " x");
    absl::StrAppend(&text, id, "\t", label, "\t", rng.Percent(5) ? "\\N" : std::to_string(i % 13),
                    "\t", Float(rng), "\t", Date(rng.Below(900)), "\n");
  }
  for (int i = 601; i <= 900; ++i) {
    absl::StrAppend(&csv, i, ",",
                    rng.Percent(5) ? "" : absl::StrCat("\"a, \"\"q\"\"\n", i % 5, "\""), ",",
                    rng.Percent(5) ? "" : std::to_string(i % 7), ",", Float(rng), ",",
                    Date(rng.Below(900)), "\n");
  }
  std::vector<std::pair<std::string, std::string>> copies = {
      {"COPY copy_target (id, label, n, x, d) FROM STDIN", text},
      {"COPY copy_target (id, label, n, x, d) FROM STDIN (FORMAT csv, HEADER true)", csv},
  };
  ASSERT_OK(ref.Exec("TRUNCATE copy_target"));
  const Result truncated = RunCase(proxy, Unordered("TRUNCATE copy_target"));
  if (!truncated.ok) {
    ASSERT_OK(env().ExecOnPrimaries("TRUNCATE copy_target"));
  }
  Differ differ;
  for (const auto& [sql, data] : copies) {
    const Result want = CopyIn(ref.get(), sql, data);
    const Result got = CopyIn(proxy.get(), sql, data);
    differ.Check(Unordered(sql), want, got);
    if (PQstatus(proxy.get()) != CONNECTION_OK) {
      ASSERT_OK_AND_ASSIGN(proxy, env().Connect());
    }
  }
  for (const Case& c :
       {Total("SELECT * FROM copy_target ORDER BY id"),
        Unordered("SELECT count(*), sum(n), min(label), max(d) FROM copy_target")}) {
    differ.Check(c, RunCase(ref, c), RunCase(proxy, c));
  }
  differ.Finish("COPY steps");
}

}  // namespace
}  // namespace shardgate::testing
