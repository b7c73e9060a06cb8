// Routing a statement: key values -> shards per table, co-located joins merged, refusals for
// what cannot run correctly across shards, then the server role.
#include "routing/planner.h"

#include <algorithm>
#include <limits>

#include "protocol/status.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

constexpr std::string_view kOneShardHint =
    "restrict it to one shard with a shard-key condition (WHERE key = ...) or a "
    "/* shardgate: shard=NAME */ hint";

absl::StatusOr<KeyValue> LiteralKey(const Literal& lit, KeyType type) {
  switch (lit.kind) {
    case Literal::Kind::kInteger: {
      if (lit.has_int && type == KeyType::kInt) return KeyValue::Int(lit.int_value);
      ASSIGN_OR_RETURN(KeyValue v, ParseKeyText(lit.value, KeyType::kInt));
      return ConvertKey(v, type);
    }
    case Literal::Kind::kFloat:
      if (type == KeyType::kText) return KeyValue::Text(lit.value);
      return PgStatus("22P02", Cat("a non-integer number cannot be a ", KeyTypeName(type),
                                   " shard key: ", lit.value));
    case Literal::Kind::kString:
      return ParseKeyText(lit.value, type);
  }
  return PgStatus("XX000", "unknown literal kind");
}

absl::StatusOr<KeyValue> Negate(const KeyValue& v) {
  if (v.type() != KeyType::kInt) return PgStatus("22P02", "only integer keys can be negated");
  if (v.int_value() == std::numeric_limits<int64_t>::min()) {
    return PgStatus("22003", "bigint out of range");
  }
  return KeyValue::Int(-v.int_value());
}

absl::Status AddLiteral(const Literal& lit, bool array, bool negate, KeyType type,
                        KeyList& out) {
  if (array) {
    ASSIGN_OR_RETURN(std::vector<std::string> items, ParseArrayText(lit.value));
    for (const std::string& item : items) {
      ASSIGN_OR_RETURN(KeyValue k, ParseKeyText(item, type));
      out.push_back(std::move(k));
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(KeyValue k, LiteralKey(lit, type));
  if (negate) {
    ASSIGN_OR_RETURN(k, Negate(k));
  }
  out.push_back(std::move(k));
  return absl::OkStatus();
}

// Shard lists while planning: inline for the usual few shards (the plan's own list is filled
// once at the end).
using ShardList = absl::InlinedVector<int, 8>;

void SortUnique(ShardList& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

template <typename A, typename B>
ShardList Intersect(const A& a, const B& b) {
  ShardList out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

bool IsCatalog(const TableRef& t) {
  if (t.schema == "pg_catalog" || t.schema == "information_schema") return true;
  return t.schema.empty() && t.name.starts_with("pg_");
}

enum class Class : uint8_t { kCatalog, kReference, kSharded, kFixed };

// An INSERT that leaves `key` to the table's default: DEFAULT VALUES, a column list without
// it, or DEFAULT for it in every VALUES row.
bool LeavesKeyToShard(const InsertInfo& ins, const std::string& key) {
  if (ins.default_values) return true;
  if (ins.columns.empty()) return false;  // no column list: every column, the key too
  auto col = std::find(ins.columns.begin(), ins.columns.end(), key);
  if (col == ins.columns.end()) return true;
  const size_t idx = static_cast<size_t>(col - ins.columns.begin());
  if (ins.rows.empty()) return false;
  for (const std::vector<ValueRef>& row : ins.rows) {
    if (idx >= row.size() || row[idx].source != ValueRef::Source::kDefault) return false;
  }
  return true;
}

}  // namespace

std::string_view SpreadName(RoutePlan::Spread spread) {
  switch (spread) {
    case RoutePlan::Spread::kOne: return "one";
    case RoutePlan::Spread::kSome: return "some";
    case RoutePlan::Spread::kAll: return "all";
    case RoutePlan::Spread::kAnyOne: return "any";
  }
  return "?";
}

absl::Status ResolveKeys(const ValueRef& ref, const QueryInfo& info, const PlanInput& input,
                         KeyType type, KeyList& out) {
  switch (ref.source) {
    case ValueRef::Source::kParam: {
      if (ref.index < 1 || static_cast<size_t>(ref.index) > input.params.values.size()) {
        return PgStatus("08P01", Cat("no value bound for parameter $", ref.index));
      }
      size_t i = static_cast<size_t>(ref.index) - 1;
      const std::optional<std::string_view>& v = input.params.values[i];
      if (!v) return absl::OkStatus();  // NULL matches no row
      int16_t format = input.params.Format(i);
      uint32_t oid = input.params.Type(i);
      if (ref.array) {
        if (format == 1) {
          ASSIGN_OR_RETURN(std::vector<KeyValue> keys, ParseArrayBinary(*v, type));
          out.insert(out.end(), keys.begin(), keys.end());
        } else {
          ASSIGN_OR_RETURN(std::vector<std::string> items, ParseArrayText(*v));
          for (const std::string& item : items) {
            ASSIGN_OR_RETURN(KeyValue k, ParseKeyText(item, type));
            out.push_back(std::move(k));
          }
        }
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(KeyValue k, ParseKeyParam(*v, format, oid, type));
      if (ref.negate) {
        ASSIGN_OR_RETURN(k, Negate(k));
      }
      out.push_back(std::move(k));
      return absl::OkStatus();
    }
    case ValueRef::Source::kLiteral:
      if (ref.index < 0 || static_cast<size_t>(ref.index) >= input.literals.size()) {
        return PgStatus("XX000", Cat("literal ", ref.index, " missing for a cached analysis"));
      }
      return AddLiteral(input.literals[ref.index], ref.array, ref.negate, type, out);
    case ValueRef::Source::kConst:
      if (ref.index < 0 || static_cast<size_t>(ref.index) >= info.constants.size()) {
        return PgStatus("XX000", "constant missing");
      }
      return AddLiteral(info.constants[ref.index], ref.array, ref.negate, type, out);
    case ValueRef::Source::kNull:
      return absl::OkStatus();
    default:
      return PgStatus("0A000", "a shard key value must be a constant or a parameter",
                      kOneShardHint);
  }
}

absl::StatusOr<RoutePlan> Planner::PlanStatement(const QueryInfo& info,
                                                 const PlanInput& input) const {
  const ShardMap& m = *map_;
  RoutePlan plan;
  plan.write = info.write;
  auto set_role = [&] {
    if (plan.write || input.in_transaction || input.hints.role == Role::kPrimary ||
        info.kind == StatementKind::kTransaction) {
      plan.role = Role::kPrimary;
    } else if (input.hints.role) {
      plan.role = *input.hints.role;
    } else {
      switch (m.read_from()) {
        case conf::ReadFrom::kReplicas: plan.role = Role::kReplica; break;
        case conf::ReadFrom::kPrimary: plan.role = Role::kPrimary; break;
        case conf::ReadFrom::kAny: plan.role = Role::kAny; break;
      }
    }
  };
  auto one = [&](int shard, std::string reason) -> absl::StatusOr<RoutePlan> {
    plan.spread = RoutePlan::Spread::kOne;
    plan.shards = {shard};
    plan.reason = std::move(reason);
    set_role();
    return std::move(plan);
  };
  auto any = [&](std::string reason) -> absl::StatusOr<RoutePlan> {
    plan.spread = RoutePlan::Spread::kAnyOne;
    plan.shards.assign(m.all_shards().begin(), m.all_shards().end());
    plan.reason = std::move(reason);
    set_role();
    return std::move(plan);
  };
  auto all = [&](std::string reason) -> absl::StatusOr<RoutePlan> {
    plan.spread = RoutePlan::Spread::kAll;
    plan.shards.assign(m.all_shards().begin(), m.all_shards().end());
    plan.reason = std::move(reason);
    set_role();
    return std::move(plan);
  };

  if (input.hints.shard) {
    std::optional<int> s = m.FindShard(*input.hints.shard);
    if (!s) {
      std::string names;
      for (int i = 0; i < m.shard_count(); ++i) names += Cat(i ? ", " : "", m.shard_name(i));
      return PgStatus("22023", Cat("unknown shard '", *input.hints.shard, "' in a hint"),
                      Cat("shards of database ", m.database(), ": ", names));
    }
    return one(*s, Cat("hint shard=", *input.hints.shard));
  }
  if (!m.sharded()) return one(0, "single-shard database");

  switch (info.kind) {
    case StatementKind::kEmpty: return any("empty statement");
    case StatementKind::kTransaction: return any("transaction control");
    case StatementKind::kSet: return any("session setting");
    case StatementKind::kShow: return any("SHOW");
    default: break;
  }

  // Classify the tables.
  const size_t n = info.tables.size();
  absl::InlinedVector<Class, 8> cls(n, Class::kCatalog);
  absl::InlinedVector<const ShardMap::Table*, 8> rule(n, nullptr);
  bool any_listed_or_none = n == 0;
  int unknown = -1;  // an unlisted table in a map without default_shard
  for (size_t i = 0; i < n; ++i) {
    const TableRef& t = info.tables[i];
    if (IsCatalog(t)) continue;
    rule[i] = m.FindTable(t.schema, t.name);
    if (rule[i] != nullptr) {
      cls[i] = rule[i]->reference ? Class::kReference : Class::kSharded;
      any_listed_or_none = true;
    } else if (m.default_shard()) {
      cls[i] = Class::kFixed;
    } else if (unknown < 0) {
      unknown = static_cast<int>(i);
    }
  }

  if (info.kind == StatementKind::kDdl ||
      (info.kind == StatementKind::kUtility && info.write)) {
    if (info.kind == StatementKind::kUtility && n == 0) {
      if (m.default_shard()) {
        return one(*m.default_shard(), Cat(info.command, " without a table: default shard"));
      }
      return PgStatus("0A000", Cat(info.command, " cannot be routed: it names no table"),
                      "add a /* shardgate: shard=NAME */ hint");
    }
    if (!any_listed_or_none && m.default_shard()) {
      return one(*m.default_shard(), Cat(info.command, " on unlisted tables: default shard"));
    }
    return all(Cat(info.command, ": every shard"));
  }
  if (info.kind == StatementKind::kUtility) return any(Cat(info.command, ": any shard"));
  if (unknown >= 0) {
    return PgStatus("0A000", Cat("table ", info.tables[unknown].QualifiedName(),
                                 " is not in the shard map of database ", m.database()),
                    "list it under tables: (sharded or reference: true) or set default_shard");
  }

  // A key hint routes by the router of the first sharded table (or the only router).
  if (input.hints.key) {
    const Router* router = nullptr;
    for (size_t i = 0; i < n && router == nullptr; ++i) {
      if (cls[i] == Class::kSharded) router = rule[i]->router;
    }
    if (router == nullptr && m.routers().size() == 1) router = m.routers()[0].get();
    if (router == nullptr) {
      return PgStatus("0A000", "a key= hint needs a sharded table (or a single router)",
                      "use shard=NAME instead");
    }
    ASSIGN_OR_RETURN(KeyValue key, ParseKeyText(*input.hints.key, router->key_type()));
    ASSIGN_OR_RETURN(int shard, router->Route(key));
    for (size_t i = 0; i < n; ++i) {
      if (cls[i] == Class::kSharded && rule[i]->router == router) {
        plan.keys.push_back({rule[i], key});
        break;
      }
    }
    return one(shard, Cat("hint key=", *input.hints.key, " -> ", m.shard_name(shard), " (",
                          router->type(), " ", router->name(), ")"));
  }

  absl::InlinedVector<std::optional<ShardList>, 4> sets(n);
  std::vector<std::string> why;
  KeyList keys;
  auto shard_names = [&](const auto& shards) {
    std::string s;
    for (int sh : shards) s += Cat(s.empty() ? "" : ", ", m.shard_name(sh));
    return s.empty() ? std::string("(none)") : s;
  };
  auto note_key = [&](const ShardMap::Table* table, const KeyValue& key) {
    if (plan.keys.size() < RoutePlan::kMaxKeys) {
      plan.keys.push_back({table, key});
    } else {
      plan.keys_complete = false;
    }
  };
  auto restrict = [&](size_t t, ShardList shards) {
    sets[t] = sets[t] ? Intersect(*sets[t], shards) : std::move(shards);
  };

  for (const KeyConstraint& k : info.keys) {
    for (int t : k.tables) {
      if (t < 0 || static_cast<size_t>(t) >= n || cls[t] != Class::kSharded) continue;
      if (rule[t]->key != k.column) continue;
      const Router* router = rule[t]->router;
      keys.clear();
      for (const ValueRef& v : k.values) {
        RETURN_IF_ERROR(ResolveKeys(v, info, input, router->key_type(), keys));
      }
      ShardList shards;
      for (const KeyValue& key : keys) {
        ASSIGN_OR_RETURN(int s, router->Route(key));
        shards.push_back(s);
        note_key(rule[t], key);
      }
      SortUnique(shards);
      if (input.explain) {
        std::string values;
        for (size_t i = 0; i < keys.size() && i < 8; ++i) {
          values += Cat(i ? ", " : "", keys[i].ToString());
        }
        if (keys.size() > 8) values += ", ...";
        why.push_back(Cat(info.tables[t].QualifiedName(), ".", k.column,
                          keys.size() == 1 ? " = " : " in (", values,
                          keys.size() == 1 ? "" : ")", " -> ", shard_names(shards)));
      }
      restrict(t, std::move(shards));
    }
  }

  // INSERT: each VALUES row by its key.
  std::vector<int> row_shard;
  if (info.insert && info.insert->table >= 0 && cls[info.insert->table] == Class::kSharded) {
    const InsertInfo& ins = *info.insert;
    const ShardMap::Table& r = *rule[ins.table];
    const std::string& tname = info.tables[ins.table].QualifiedName();
    if (r.generated_key && !ins.from_select && LeavesKeyToShard(ins, r.key)) {
      // The shards generate the key (shardctl sequence install): each generates only keys it
      // owns, so any shard of the router will do.
      for (size_t i = 0; i < n; ++i) {
        if (static_cast<int>(i) != ins.table && cls[i] != Class::kReference &&
            cls[i] != Class::kCatalog) {
          return PgStatus("0A000", Cat("INSERT into ", tname, " without its key ", r.key,
                                       " cannot also read table ", info.tables[i].QualifiedName()),
                          "name the key in the INSERT");
        }
      }
      plan.spread = RoutePlan::Spread::kAnyOne;
      plan.shards.assign(r.router->Shards().begin(), r.router->Shards().end());
      std::sort(plan.shards.begin(), plan.shards.end());
      plan.keys_complete = false;
      plan.reason = Cat("INSERT into ", tname, " without its key ", r.key,
                        " (generated by the shard): any shard of ", r.router->type(), " ",
                        r.router->name());
      set_role();
      return plan;
    }
    if (ins.from_select || ins.default_values) {
      return PgStatus("0A000", Cat("INSERT into sharded table ", tname, " needs VALUES rows "
                                   "with its key ", r.key),
                      "INSERT ... SELECT and DEFAULT VALUES cannot be routed; send the rows "
                      "with VALUES, or add a /* shardgate: shard=NAME */ hint");
    }
    auto col = std::find(ins.columns.begin(), ins.columns.end(), r.key);
    if (col == ins.columns.end()) {
      return PgStatus("0A000", Cat("INSERT into sharded table ", tname,
                                   " must name its key column ", r.key),
                      Cat("write INSERT INTO ", tname, " (", r.key, ", ...) VALUES (...)"));
    }
    size_t idx = static_cast<size_t>(col - ins.columns.begin());
    ShardList shards;
    for (const std::vector<ValueRef>& row : ins.rows) {
      if (idx >= row.size()) return PgStatus("42601", "INSERT has more target columns than values");
      const ValueRef& v = row[idx];
      if (v.source == ValueRef::Source::kNull || v.source == ValueRef::Source::kDefault) {
        return PgStatus("23502", Cat("shard key ", r.key, " of ", tname, " must not be NULL or "
                                     "DEFAULT"));
      }
      keys.clear();
      RETURN_IF_ERROR(ResolveKeys(v, info, input, r.router->key_type(), keys));
      if (keys.size() != 1) {
        return PgStatus("23502", Cat("shard key ", r.key, " of ", tname, " must not be NULL"));
      }
      ASSIGN_OR_RETURN(int s, r.router->Route(keys[0]));
      note_key(&r, keys[0]);
      row_shard.push_back(s);
      shards.push_back(s);
    }
    SortUnique(shards);
    if (input.explain) {
      why.push_back(Cat("INSERT ", ins.rows.size(), ins.rows.size() == 1 ? " row" : " rows",
                        " by ", tname, ".", r.key, " -> ", shard_names(shards)));
    }
    sets[ins.table] = std::move(shards);
  }

  // UPDATE of the key would have to move the row to another shard.
  if (info.kind == StatementKind::kUpdate && n > 0 && cls[0] == Class::kSharded) {
    for (const std::string& c : info.updated_columns) {
      if (c == rule[0]->key) {
        return PgStatus("0A000", Cat("UPDATE of shard key ", info.tables[0].QualifiedName(), ".",
                                     c, " is not supported (the row may belong to another "
                                        "shard)"),
                        "DELETE the row and INSERT it with the new key");
      }
    }
  }

  // COPY FROM into a sharded table: rows are split by the proxy.
  if (info.copy && info.copy->from && info.copy->table >= 0 &&
      cls[info.copy->table] == Class::kSharded) {
    const ShardMap::Table& r = *rule[info.copy->table];
    const std::string& tname = info.tables[info.copy->table].QualifiedName();
    auto col = std::find(info.copy->columns.begin(), info.copy->columns.end(), r.key);
    if (col == info.copy->columns.end() && r.generated_key && !info.copy->columns.empty() &&
        !info.copy->has_query) {
      // The shard generates the keys of all the rows: one shard takes the whole COPY.
      plan.spread = RoutePlan::Spread::kAnyOne;
      plan.shards.assign(r.router->Shards().begin(), r.router->Shards().end());
      std::sort(plan.shards.begin(), plan.shards.end());
      plan.keys_complete = false;
      plan.reason = Cat("COPY into ", tname, " without its key ", r.key,
                        " (generated by the shard): any shard of ", r.router->type(), " ",
                        r.router->name());
      set_role();
      return plan;
    }
    if (col == info.copy->columns.end()) {
      return PgStatus("0A000", Cat("COPY into sharded table ", tname,
                                   " needs a column list that names its key ", r.key),
                      Cat("COPY ", tname, " (", r.key, ", ...) FROM STDIN"));
    }
    if (info.copy->format == "binary") {
      return PgStatus("0A000", "COPY FROM in binary format into a sharded table is not supported",
                      "use FORMAT text or csv");
    }
    plan.keys_complete = false;  // the rows' keys are seen only as the COPY streams
    plan.copy_router = r.router;
    plan.copy_key_column = static_cast<int>(col - info.copy->columns.begin());
    plan.spread = r.router->Shards().size() == static_cast<size_t>(m.shard_count())
                      ? RoutePlan::Spread::kAll
                      : RoutePlan::Spread::kSome;
    plan.shards.assign(r.router->Shards().begin(), r.router->Shards().end());
    plan.reason = Cat("COPY rows split by ", tname, ".", r.key, " (", r.router->type(), " ",
                      r.router->name(), ")");
    set_role();
    return plan;
  }

  // Co-located joins: union-find over tables joined on their keys under one router.
  absl::InlinedVector<int, 8> parent(n);
  for (size_t i = 0; i < n; ++i) parent[i] = static_cast<int>(i);
  auto find = [&](int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  for (const ColumnEquality& j : info.joins) {
    int a = j.table_a, b = j.table_b;
    if (a < 0 || b < 0 || static_cast<size_t>(a) >= n || static_cast<size_t>(b) >= n) continue;
    if (cls[a] != Class::kSharded || cls[b] != Class::kSharded) continue;
    if (rule[a]->router != rule[b]->router) continue;
    if (j.column_a != rule[a]->key || j.column_b != rule[b]->key) continue;
    parent[find(a)] = find(b);
  }
  struct Group {
    int root;
    ShardList shards;
    bool restricted;
    int first_table;  // for messages
    const Router* router;
  };
  // The tables of a group, for messages (built only when needed).
  auto group_tables = [&](const Group& g) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      bool member = cls[i] == Class::kFixed ? -1 - static_cast<int>(i) == g.root
                                            : (cls[i] == Class::kSharded &&
                                               find(static_cast<int>(i)) == g.root);
      if (member) s += Cat(s.empty() ? "" : ", ", info.tables[i].QualifiedName());
    }
    return s;
  };
  absl::InlinedVector<Group, 4> groups;
  std::string written_reference;
  bool has_reference = false;
  for (size_t i = 0; i < n; ++i) {
    if (cls[i] == Class::kReference) {
      has_reference = true;
      if (info.tables[i].written && info.write) written_reference = info.tables[i].QualifiedName();
      continue;
    }
    if (cls[i] == Class::kCatalog) continue;
    int root = cls[i] == Class::kFixed ? -1 - static_cast<int>(i) : find(static_cast<int>(i));
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
      return x.root == root;
    });
    ShardList own;
    bool restricted = true;
    const Router* router = nullptr;
    if (cls[i] == Class::kFixed) {
      own = {*m.default_shard()};
    } else {
      router = rule[i]->router;
      restricted = sets[i].has_value();
      if (restricted) {
        own = *sets[i];
      } else {
        own.assign(router->Shards().begin(), router->Shards().end());
      }
    }
    if (g == groups.end()) {
      groups.push_back({root, std::move(own), restricted, static_cast<int>(i), router});
    } else {
      g->shards = Intersect(g->shards, own);
      g->restricted = g->restricted || restricted;
    }
  }

  if (!written_reference.empty()) {
    if (!groups.empty()) {
      return PgStatus("0A000", Cat("a write to reference table ", written_reference,
                                   " must not involve sharded tables"),
                      "reference tables are written on every shard");
    }
    return all(Cat("write to reference table ", written_reference, ": every shard"));
  }
  if (groups.empty()) {
    if (info.write) {
      int s = m.default_shard().value_or(m.all_shards().front());
      return one(s, Cat(info.write_reason, " without a sharded table: shard ", m.shard_name(s)));
    }
    return any(has_reference ? "reference tables only: any shard" : "no sharded table: any shard");
  }

  ShardList target;
  if (groups.size() == 1) {
    target = groups[0].shards;
  } else {
    bool same_single = true;
    for (const Group& g : groups) {
      same_single = same_single && g.shards.size() <= 1 &&
                    (g.shards.empty() || groups[0].shards.empty() ||
                     g.shards == groups[0].shards);
    }
    if (!same_single) {
      return PgStatus("0A000", Cat("the statement combines tables that are not co-located (",
                                   group_tables(groups[0]), " and ", group_tables(groups[1]),
                                   ") and can span several shards"),
                      "join sharded tables on their shard keys under one router, or restrict "
                      "every table to the same shard");
    }
    for (const Group& g : groups) {
      if (!g.shards.empty()) target = g.shards;
    }
  }
  for (const Group& g : groups) {
    if (!g.restricted && g.router != nullptr) plan.keys_complete = false;
    if (input.explain && !g.restricted && g.router != nullptr) {
      why.push_back(Cat("no key condition on ", group_tables(g), ": ", g.router->type(), " ",
                        g.router->name(), " spans ", g.shards.size(), " shards"));
    }
  }
  if (target.empty()) {
    // NULL or contradictory keys: no row can match, any single shard answers correctly.
    const std::vector<int>& candidates =
        groups[0].router != nullptr ? groups[0].router->Shards() : m.all_shards();
    if (input.explain) why.push_back("no row can match");
    target = {candidates.front()};
  }
  plan.shards.assign(target.begin(), target.end());
  if (plan.shards.size() == 1) {
    plan.spread = RoutePlan::Spread::kOne;
  } else if (plan.shards.size() == static_cast<size_t>(m.shard_count())) {
    plan.spread = RoutePlan::Spread::kAll;
  } else {
    plan.spread = RoutePlan::Spread::kSome;
  }
  if (plan.shards.size() > 1 && !plan.write) {
    if (!info.fanout_blockers.empty()) {
      return PgStatus("0A000", Cat(info.fanout_blockers.front(), " is not supported (the "
                                   "statement spans ", plan.shards.size(), " shards)"),
                      kOneShardHint);
    }
    plan.merge = true;
  }
  if (plan.shards.size() > 1 && !row_shard.empty()) {
    plan.insert_rows.resize(plan.shards.size());
    for (size_t r = 0; r < row_shard.size(); ++r) {
      size_t pos = std::lower_bound(plan.shards.begin(), plan.shards.end(), row_shard[r]) -
                   plan.shards.begin();
      plan.insert_rows[pos].push_back(static_cast<int>(r));
    }
  }
  for (const std::string& w : why) plan.reason += Cat(plan.reason.empty() ? "" : "; ", w);
  if (plan.reason.empty()) plan.reason = input.explain ? "no shard key condition" : "by key";
  set_role();
  return plan;
}

absl::StatusOr<RoutePlan> Planner::Plan(const Analysis& analysis, const PlanInput& input) const {
  if (analysis.statements.empty()) {
    RoutePlan plan;
    plan.spread = RoutePlan::Spread::kAnyOne;
    plan.shards.assign(map_->all_shards().begin(), map_->all_shards().end());
    plan.reason = "empty query";
    plan.role = input.in_transaction ? Role::kPrimary : Role::kAny;
    return plan;
  }
  if (analysis.statements.size() == 1) return PlanStatement(analysis.statements[0], input);
  std::optional<RoutePlan> combined;
  // Every statement's keys, whichever plan the combination keeps.
  absl::InlinedVector<RoutedKey, 1> keys;
  bool keys_complete = true;
  for (const QueryInfo& info : analysis.statements) {
    ASSIGN_OR_RETURN(RoutePlan p, PlanStatement(info, input));
    keys_complete = keys_complete && p.keys_complete;
    for (RoutedKey& k : p.keys) {
      if (keys.size() < RoutePlan::kMaxKeys) {
        keys.push_back(std::move(k));
      } else {
        keys_complete = false;
      }
    }
    if (!combined) {
      combined = std::move(p);
      continue;
    }
    if (p.spread == RoutePlan::Spread::kAnyOne) {
      combined->write = combined->write || p.write;
      continue;
    }
    if (combined->spread == RoutePlan::Spread::kAnyOne) {
      bool w = combined->write || p.write;
      combined = std::move(p);
      combined->write = w;
      continue;
    }
    if (combined->shards != p.shards || combined->shards.size() > 1) {
      return PgStatus("0A000", "the statements of one query string go to different shards "
                               "(or to several)",
                      "send them one at a time, or in an explicit transaction");
    }
    combined->write = combined->write || p.write;
    combined->reason += Cat("; ", p.reason);
  }
  if (combined->write) combined->role = Role::kPrimary;
  combined->keys = std::move(keys);
  combined->keys_complete = keys_complete;
  return std::move(*combined);
}

}  // namespace shardgate::routing
