// `shardctl sequence install|status|remove`: per-shard generators of keys each shard owns.
#include "tools/shardctl/sequence.h"

#include <algorithm>
#include <limits>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "conf/config.h"
#include "protocol/status.h"
#include "routing/router.h"
#include "routing/shard_map.h"
#include "tools/shardctl/pg.h"

namespace shardgate::tools {
namespace {

using absl::StrCat;

// Tries per nextval before the function gives up: a hash spreads keys evenly, so a shard of n
// misses 1000 in a row with probability ((n-1)/n)^1000.
constexpr int kMaxTries = 1000;


// A range router's ranges of `shard` from its settings, as [from, to) with the gaps filled as
// the router reads them (a missing `from` continues the previous range).
absl::StatusOr<std::vector<std::pair<std::optional<int64_t>, std::optional<int64_t>>>> RangesOf(
    const conf::RouterConfig& router, const std::string& shard) {
  std::vector<std::pair<std::optional<int64_t>, std::optional<int64_t>>> out;
  const conf::Node* list = router.settings.Find("ranges");
  if (list == nullptr) return out;
  std::optional<int64_t> previous_to;
  auto number = [](const conf::Node* n) -> std::optional<int64_t> {
    if (n == nullptr) return std::nullopt;
    auto v = routing::ParseKeyText(n->scalar, routing::KeyType::kInt);
    if (!v.ok()) return std::nullopt;
    return v->int_value();
  };
  for (const conf::Node& item : list->list) {
    std::optional<int64_t> from = number(item.Find("from"));
    std::optional<int64_t> to = number(item.Find("to"));
    if (!from) from = previous_to;
    previous_to = to;
    const conf::Node* s = item.Find("shard");
    if (s != nullptr && s->scalar == shard) out.emplace_back(from, to);
  }
  return out;
}

struct Names {
  std::string sequence, function;  // unquoted base names
};

Names NamesFor(const TableName& t, const std::string& column) {
  const std::string base = StrCat(t.name, "_", column, "_sg");
  return {StrCat(base, "_seq"), StrCat(base, "_next")};
}


// The key column's type on a shard: an integer type, else an error naming the shard.
absl::Status CheckColumn(PgConn& conn, const std::string& shard, const std::string& table,
                         const TableName& t, const std::string& column) {
  ASSIGN_OR_RETURN(PgResult r,
                   conn.ExecParams("SELECT to_regclass($1) IS NOT NULL, (SELECT "
                                   "format_type(a.atttypid, NULL) FROM pg_attribute a WHERE "
                                   "a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT "
                                   "a.attisdropped AND a.attnum > 0)",
                                   {t.Qualified(t.name), column}));
  if (r.get(0, 0) != "t") {
    return PgStatus("42P01", StrCat("table ", table, " does not exist on shard ", shard, " (",
                                    conn.Describe(), ")"));
  }
  if (r.null(0, 1)) {
    return PgStatus("42703", StrCat("column ", column, " of table ", table,
                                    " does not exist on shard ", shard));
  }
  const std::string type = r.get(0, 1);
  if (type != "bigint" && type != "integer" && type != "smallint") {
    return PgStatus("42804",
                    StrCat("key column ", table, ".", column, " is ", type, " on shard ", shard,
                           ": a sequence generates integers"),
                    "use bigint (or integer) keys");
  }
  return absl::OkStatus();
}

absl::Status Install(PgConn& conn, const TableName& t, const std::string& column,
                     const ShardSequence& s) {
  const Names n = NamesFor(t, column);
  const std::string seq = t.Qualified(n.sequence), fn = t.Qualified(n.function);
  std::string create = StrCat("CREATE SEQUENCE IF NOT EXISTS ", seq, " AS bigint INCREMENT BY ",
                              s.increment, " MINVALUE ", s.start, " START WITH ", s.start);
  if (s.max) absl::StrAppend(&create, " MAXVALUE ", *s.max);
  absl::StrAppend(&create, " OWNED BY ", t.Qualified(t.name), ".", QuoteIdent(column));
  const std::string function = StrCat(
      "CREATE OR REPLACE FUNCTION ", fn,
      "() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $sg$\n"
      "DECLARE v bigint;\n"
      "BEGIN\n"
      "  -- shardgate: keys of shard ",
      s.shard,
      " only (shardctl sequence install)\n"
      "  FOR i IN 1..",
      kMaxTries,
      " LOOP\n"
      "    v := nextval(",
      conn.Literal(seq),
      ");\n"
      "    IF (",
      s.owner_sql, ") = ", conn.Literal(s.shard),
      " THEN RETURN v; END IF;\n"
      "  END LOOP;\n"
      "  RAISE EXCEPTION USING ERRCODE = '2200H', MESSAGE = format('%s: no key of shard %s in ",
      kMaxTries, " values of %s (last %s)', ", conn.Literal(n.function), ", ",
      conn.Literal(s.shard), ", ", conn.Literal(n.sequence),
      ", v), HINT = 'check the router in the shardgate config and reinstall';\n"
      "END\n$sg$");
  RETURN_IF_ERROR(conn.Exec("BEGIN").status());
  // Made as the table's owner (the sequence must share it to be OWNED BY the column, and the
  // owner's sessions may then call it), whoever shardctl connects as.
  absl::Status st = conn.Exec(StrCat("DO $sg$ BEGIN EXECUTE format('SET LOCAL ROLE %I', (SELECT "
                                     "pg_get_userbyid(relowner) FROM pg_class WHERE oid = ",
                                     conn.Literal(t.Qualified(t.name)), "::regclass)); END $sg$"))
                        .status();
  if (st.ok()) st = conn.Exec(create).status();
  if (st.ok()) {
    // Past the keys the shard already holds (rows written with explicit keys, or a sequence
    // removed and installed again); they are the shard's own, so the step stays in its keys.
    st = conn.Exec(StrCat("SELECT setval(", conn.Literal(seq), ", m) FROM (SELECT max(",
                          QuoteIdent(column), ")::int8 AS m FROM ", t.Qualified(t.name),
                          ") k, (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 "
                          "END AS l FROM ",
                          seq, ") s WHERE k.m >= ", s.start, " AND k.m > s.l"))
             .status();
  }
  if (st.ok()) st = conn.Exec(function).status();
  if (st.ok()) {
    st = conn.Exec(StrCat("ALTER TABLE ", t.Qualified(t.name), " ALTER COLUMN ", QuoteIdent(column),
                          " SET DEFAULT ", fn, "()"))
             .status();
  }
  if (st.ok()) st = conn.Exec("COMMIT").status();
  if (!st.ok()) (void)conn.Exec("ROLLBACK");
  return st;
}

absl::Status Remove(PgConn& conn, const TableName& t, const std::string& column) {
  const Names n = NamesFor(t, column);
  RETURN_IF_ERROR(conn.Exec("BEGIN").status());
  // The default only if it is ours (a table may have been given another since).
  absl::Status st =
      conn.Exec(StrCat("DO $sg$ BEGIN IF EXISTS (SELECT 1 FROM pg_attrdef d JOIN pg_attribute a "
                       "ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = ",
                       conn.Literal(t.Qualified(t.name)), "::regclass AND a.attname = ",
                       conn.Literal(column), " AND pg_get_expr(d.adbin, d.adrelid) LIKE ",
                       conn.Literal(StrCat("%", n.function, "()")), ") THEN EXECUTE ",
                       conn.Literal(StrCat("ALTER TABLE ", t.Qualified(t.name), " ALTER COLUMN ",
                                           QuoteIdent(column), " DROP DEFAULT")),
                       "; END IF; END $sg$"))
          .status();
  if (st.ok()) {
    st = conn.Exec(StrCat("DROP FUNCTION IF EXISTS ", t.Qualified(n.function), "()")).status();
  }
  if (st.ok()) st = conn.Exec(StrCat("DROP SEQUENCE IF EXISTS ", t.Qualified(n.sequence))).status();
  if (st.ok()) st = conn.Exec("COMMIT").status();
  if (!st.ok()) (void)conn.Exec("ROLLBACK");
  return st;
}

// One shard's state: installed (sequence, function and default all there), its last value.
struct Status {
  bool sequence = false, function = false, is_default = false;
  std::string last_value;  // "" before the first nextval
};

absl::StatusOr<Status> StatusOn(PgConn& conn, const TableName& t, const std::string& column) {
  const Names n = NamesFor(t, column);
  ASSIGN_OR_RETURN(
      PgResult r,
      conn.ExecParams(
          "SELECT to_regclass($1) IS NOT NULL, to_regprocedure($2 || '()') IS NOT NULL, "
          "(SELECT last_value::text FROM pg_sequences WHERE format('%I.%I', schemaname, "
          "sequencename)::regclass = to_regclass($1)), EXISTS (SELECT 1 FROM pg_attrdef d JOIN "
          "pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = "
          "to_regclass($3) AND a.attname = $4 AND pg_get_expr(d.adbin, d.adrelid) LIKE '%' || "
          "$5 || '()')",
          {t.Qualified(n.sequence), t.Qualified(n.function), t.Qualified(t.name), column,
           n.function}));
  Status s;
  s.sequence = r.get(0, 0) == "t";
  s.function = r.get(0, 1) == "t";
  s.last_value = r.null(0, 2) ? "" : r.get(0, 2);
  s.is_default = r.get(0, 3) == "t";
  return s;
}

}  // namespace

absl::StatusOr<std::vector<ShardSequence>> SequencePlanFor(const conf::DatabaseConfig& db,
                                                           const std::string& table,
                                                           const std::string& column) {
  ASSIGN_OR_RETURN(std::shared_ptr<const routing::ShardMap> map, routing::ShardMap::Build(db));
  const TableName t = SplitTable(table);
  const routing::ShardMap::Table* rule = map->FindTable(t.schema, t.name);
  if (rule == nullptr) {
    return PgStatus("42P01",
                    StrCat("table ", table, " is not in the shard map of database ", db.name),
                    "list it under tables: with a key and a router");
  }
  if (rule->reference) {
    return PgStatus("0A000",
                    StrCat("table ", table,
                           " is a reference table: its rows are the "
                           "same on every shard, a key generated per shard would differ"),
                    "sharded sequences are for sharded tables");
  }
  if (!column.empty() && absl::AsciiStrToLower(column) != rule->key) {
    return PgStatus("0A000", StrCat("column ", column, " is not the shard key of ", table, " (",
                                    rule->key, ")"));
  }
  const routing::Router& router = *rule->router;
  if (router.key_type() != routing::KeyType::kInt) {
    return PgStatus(
        "0A000",
        StrCat("the key of ", table, " is ", std::string(routing::KeyTypeName(router.key_type())),
               " (router ", router.name(), "): a sequence generates integers"));
  }
  if (router.type() == "directory") {
    return PgStatus("0A000",
                    StrCat("router ", router.name(), " of ", table,
                           " is a directory: it owns only the keys listed, so the "
                           "shards cannot generate keys"),
                    "generate keys with SELECT shardgate.next_id() instead");
  }
  const conf::RouterConfig& rc = db.routers.at(router.name());
  std::vector<std::string> shard_names;
  for (int i = 0; i < map->shard_count(); ++i) shard_names.push_back(map->shard_name(i));
  ASSIGN_OR_RETURN(std::string owner, router.OwnerSql("v", shard_names));
  const conf::Node* hash = rc.settings.Find("hash");
  const bool plain_modulo = router.type() == "modulo" && hash != nullptr && hash->scalar == "none";
  std::vector<ShardSequence> out;
  std::vector<int> shards = router.Shards();
  std::sort(shards.begin(), shards.end());
  for (int index : shards) {
    ShardSequence s;
    s.shard = map->shard_name(index);
    s.column = rule->key;
    s.owner_sql = owner;
    if (plain_modulo) {
      // Key k goes to the shard at k mod n: the shard's keys are one residue, step n.
      s.increment = static_cast<int64_t>(router.Shards().size());
      for (int64_t k = 1; k <= s.increment; ++k) {
        auto owner_index = router.Route(routing::KeyValue::Int(k));
        if (owner_index.ok() && *owner_index == index) s.start = k;
      }
    } else if (router.type() == "range") {
      ASSIGN_OR_RETURN(auto ranges, RangesOf(rc, s.shard));
      if (ranges.size() != 1) {
        return PgStatus("0A000",
                        StrCat("shard ", s.shard, " holds ", ranges.size(), " ranges of router ",
                               router.name(), ": a sequence needs exactly one"),
                        "give the shard one contiguous range");
      }
      auto [from, to] = ranges[0];
      s.start = from ? std::max<int64_t>(*from, 1) : 1;
      if (to) {
        if (*to - 1 < s.start) {
          return PgStatus("0A000", StrCat("shard ", s.shard, "'s range of router ", router.name(),
                                          " holds no positive key"));
        }
        s.max = *to - 1;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

int SequenceCommand(const SequenceOptions& options, std::ostream& out, std::ostream& err) {
  const bool json = options.common.json;
  auto fail = [&](const absl::Status& status) {
    PgError e = ToPgError(status);
    if (json) {
      out << "{\"error\": {\"sqlstate\": " << JsonString(e.sqlstate)
          << ", \"message\": " << JsonString(e.message) << ", \"hint\": " << JsonString(e.hint)
          << "}}\n";
    } else {
      err << "ERROR " << e.sqlstate << ": " << e.message << "\n";
      if (!e.hint.empty()) err << "HINT: " << e.hint << "\n";
    }
    return 1;
  };
  auto config = conf::LoadFile(options.common.config_path);
  if (!config.ok()) {
    err << config.status().message() << "\n";
    return 1;
  }
  const conf::DatabaseConfig* db = nullptr;
  if (!options.common.database.empty()) {
    db = (*config)->FindDatabase(options.common.database);
  } else {
    for (const auto& [name, d] : (*config)->databases) {
      if (db == nullptr && d.Sharded()) db = &d;
    }
  }
  if (db == nullptr) {
    return fail(PgStatus("3D000", StrCat("no sharded database '", options.common.database, "' in ",
                                         options.common.config_path)));
  }
  auto plan = SequencePlanFor(*db, options.table, options.column);
  if (!plan.ok()) return fail(plan.status());
  const TableName t = SplitTable(options.table);
  if (plan->empty()) return fail(PgStatus("0A000", "the table's router spans no shard"));
  const std::string column = plan->front().column;
  const Names names = NamesFor(t, column);

  // Every shard checked before any is changed: an install does all shards or none it can tell.
  std::vector<PgConn> conns;
  for (const ShardSequence& s : *plan) {
    auto params = ShardPrimaryParams(**config, *db, s.shard);
    if (!params.ok()) return fail(params.status());
    auto conn = PgConn::Connect(*params);
    if (!conn.ok()) return fail(conn.status());
    if (options.action != "remove") {
      if (absl::Status st = CheckColumn(*conn, s.shard, options.table, t, column); !st.ok()) {
        return fail(st);
      }
    }
    conns.push_back(*std::move(conn));
  }
  std::string rows;
  for (size_t i = 0; i < plan->size(); ++i) {
    const ShardSequence& s = (*plan)[i];
    PgConn& conn = conns[i];
    std::string state;
    if (options.action == "install") {
      if (absl::Status st = Install(conn, t, column, s); !st.ok()) {
        return fail(PgStatus(SqlState(st), StrCat("shard ", s.shard, ": ", st.message())));
      }
      state = "installed";
    } else if (options.action == "remove") {
      if (absl::Status st = Remove(conn, t, column); !st.ok()) {
        return fail(PgStatus(SqlState(st), StrCat("shard ", s.shard, ": ", st.message())));
      }
      state = "removed";
    }
    std::string last;
    if (options.action == "status") {
      auto st = StatusOn(conn, t, column);
      if (!st.ok()) return fail(st.status());
      state = st->sequence && st->function && st->is_default ? "installed"
              : !st->sequence && !st->function               ? "absent"
                                                             : "partial";
      last = st->last_value;
    }
    if (json) {
      absl::StrAppend(&rows, i ? ", " : "", "{\"shard\": ", JsonString(s.shard),
                      ", \"state\": ", JsonString(state), ", \"start\": ", s.start,
                      ", \"increment\": ", s.increment,
                      ", \"max\": ", s.max ? std::to_string(*s.max) : "null",
                      ", \"last_value\": ", last.empty() ? "null" : last, "}");
    } else {
      out << s.shard << ": " << state << " (start " << s.start << ", increment " << s.increment;
      if (s.max) out << ", max " << *s.max;
      if (!last.empty()) out << ", last value " << last;
      out << ")\n";
    }
  }
  if (json) {
    out << "{\"table\": " << JsonString(options.table) << ", \"column\": " << JsonString(column)
        << ", \"sequence\": " << JsonString(names.sequence)
        << ", \"function\": " << JsonString(names.function + "()") << ", \"shards\": [" << rows
        << "]}\n";
  } else if (options.action == "install") {
    out << "default of " << options.table << "." << column << ": " << names.function
        << "() (sequence " << names.sequence << ") on every shard; set generated_key: true on "
        << "the table for INSERTs without the key\n";
  }
  return 0;
}

}  // namespace shardgate::tools
