// `shardctl reshard` steps: plan, start (copy + catch-up), status, verify, cutover, cleanup,
// abort. See reshard.h for the method.
#include "tools/shardctl/reshard.h"
#include "tools/shardctl/reshard_steps.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "protocol/status.h"

namespace shardgate::tools {
namespace steps {

// ---- plan

int PlanStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, false);
  if (!c.ok()) return r.Fail(c.status());
  const Plan& plan = c->plan;
  int64_t total = 0;
  if (plan.tables.empty()) {
    r.Event("plan", {{"moving_rows", "0"}}, "Nothing moves: both maps give every row the same shard.");
    return 0;
  }
  for (const auto& t : plan.tables) {
    for (const auto& s : t.sources) {
      auto conn = ConnectShard(plan, s);
      if (!conn.ok()) return r.Fail(conn.status());
      const std::string owner = t.reference ? "'*'" : t.new_owner;
      auto rows = conn->Exec(absl::StrCat("SELECT (", owner, ") AS owner, count(*) FROM ",
                                          t.QuotedName(), " GROUP BY 1 ORDER BY 1"));
      if (!rows.ok()) return r.Fail(rows.status());
      for (int i = 0; i < rows->rows(); ++i) {
        const std::string to = rows->null(i, 0) ? "" : rows->get(i, 0);
        int64_t n = std::stoll(rows->get(i, 1));
        std::vector<std::string> dests = t.reference ? t.targets : std::vector<std::string>{to};
        for (const auto& d : dests) {
          const bool moves = !d.empty() && d != s;
          if (moves) total += n;
          r.Event("plan_rows",
                  {{"table", JsonString(t.name)}, {"from", JsonString(s)},
                   {"to", JsonString(d.empty() ? s : d)}, {"rows", Num(n)},
                   {"moves", moves ? "true" : "false"}},
                  absl::StrCat("  ", t.name, ": ", n, " rows ", moves ? "move " : "stay on ", s,
                               moves ? " -> " + d : ""));
        }
      }
    }
  }
  for (const auto& note : plan.notes) r.Event("note", {{"text", JsonString(note)}}, "NOTE: " + note);
  // ~100k rows/s is what tools/bench/reshard_bench.sh measures for the copy on one machine.
  const double seconds = static_cast<double>(total) / 100000.0;
  r.Event("plan", {{"moving_rows", Num(total)}, {"estimated_copy_seconds", absl::StrCat(seconds)}},
          absl::StrCat("Moving ", total, " rows (copy estimated at ~", static_cast<int64_t>(seconds + 1),
                       " s at 100k rows/s), new shards: ",
                       plan.new_shards.empty() ? "none" : absl::StrJoin(plan.new_shards, ", ")));
  return 0;
}

// ---- start

namespace {

// Schema changes on a moving table would break the stream: an event trigger refuses them on
// every server involved until cleanup or abort drops it. Needs a superuser; without one the
// reshard goes on and the stream refuses a changed table instead.
absl::Status InstallGuard(PgConn& conn, const Plan& plan) {
  std::vector<std::string> names;
  for (const auto& t : plan.tables) names.push_back(Lit(t.schema + "." + t.relname));
  const std::string fn = absl::StrCat(
      "CREATE OR REPLACE FUNCTION public.shardgate_reshard_guard() RETURNS event_trigger "
      "LANGUAGE plpgsql AS $sg$\nDECLARE r record;\nBEGIN\n"
      "  IF TG_EVENT = 'sql_drop' THEN\n"
      "    FOR r IN SELECT object_identity FROM pg_event_trigger_dropped_objects() "
      "WHERE object_type = 'table' LOOP\n"
      "      IF r.object_identity = ANY (ARRAY[", absl::StrJoin(names, ", "), "]::text[]) THEN\n"
      "        RAISE EXCEPTION 'table % is being resharded: schema changes are refused until "
      "the reshard ends', r.object_identity USING ERRCODE = '55006', HINT = 'Run shardctl "
      "reshard cutover and cleanup, or abort, first.';\n"
      "      END IF;\n    END LOOP;\n"
      "  ELSE\n"
      "    FOR r IN SELECT object_identity FROM pg_event_trigger_ddl_commands() "
      "WHERE object_type IN ('table', 'table column', 'index') LOOP\n"
      "      IF split_part(r.object_identity, '.', 1) || '.' || split_part(r.object_identity, "
      "'.', 2) = ANY (ARRAY[", absl::StrJoin(names, ", "), "]::text[]) THEN\n"
      "        RAISE EXCEPTION 'table % is being resharded: schema changes are refused until "
      "the reshard ends', r.object_identity USING ERRCODE = '55006', HINT = 'Run shardctl "
      "reshard cutover and cleanup, or abort, first.';\n"
      "      END IF;\n    END LOOP;\n  END IF;\nEND $sg$;\n");
  RETURN_IF_ERROR(conn.Exec(fn).status());
  for (const char* event : {"ddl_command_end", "sql_drop"}) {
    const std::string name = absl::StrCat("shardgate_reshard_guard_", event);
    RETURN_IF_ERROR(conn.Exec(absl::StrCat("DROP EVENT TRIGGER IF EXISTS ", name)).status());
    RETURN_IF_ERROR(conn.Exec(absl::StrCat("CREATE EVENT TRIGGER ", name, " ON ", event,
                                           " EXECUTE FUNCTION public.shardgate_reshard_guard()"))
                        .status());
  }
  return absl::OkStatus();
}


std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Creates table `t` on `target` from the source's definition (pg_dump --schema-only, with its
// owner and grants: the owner's role must exist on the new server): a new shard starts empty.
absl::Status CreateTableFrom(const Plan& plan, const MovingTable& t, const std::string& source,
                             PgConn& target) {
  ASSIGN_OR_RETURN(PgConn::Params p, plan.ShardParams(source));
  std::string pg_dump = "pg_dump";
  if (std::filesystem::exists("/usr/lib/postgresql/15/bin/pg_dump")) {
    pg_dump = "/usr/lib/postgresql/15/bin/pg_dump";
  }
  // libpq's environment carries what ShardParams adds beyond these flags (server_tls).
  std::string env = p.count("password") ? "PGPASSWORD=" + ShellQuote(p["password"]) + " " : "";
  for (const auto& [key, var] : {std::pair{"sslmode", "PGSSLMODE"},
                                 std::pair{"sslrootcert", "PGSSLROOTCERT"},
                                 std::pair{"sslcert", "PGSSLCERT"},
                                 std::pair{"sslkey", "PGSSLKEY"}}) {
    if (p.count(key)) absl::StrAppend(&env, var, "=", ShellQuote(p[key]), " ");
  }
  std::string cmd = absl::StrCat(
      env, pg_dump,
      " --schema-only --no-publications --no-subscriptions",
      " --table=", ShellQuote(t.schema + "." + t.relname), " -h ", ShellQuote(p["host"]), " -p ",
      ShellQuote(p["port"]), " -U ", ShellQuote(p["user"]), " -d ", ShellQuote(p["dbname"]));
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return PgStatus("58000", "cannot run pg_dump");
  std::string sql, line;
  char buf[4096];
  while (fgets(buf, sizeof buf, f) != nullptr) {
    line = buf;
    if (!line.empty() && line[0] == '\\') continue;  // psql meta-commands (\restrict)
    sql += line;
  }
  if (pclose(f) != 0) {
    return PgStatus("58000", absl::StrCat("pg_dump of ", t.name, " from ", source, " failed"),
                    "Create the table on the new shard by hand and run start again.");
  }
  return target.Exec(sql).status();
}

absl::Status Preflight(const Plan& plan, Report& r) {
  for (const auto& s : plan.Sources()) {
    ASSIGN_OR_RETURN(PgConn conn, ConnectShard(plan, s));
    ASSIGN_OR_RETURN(std::string wal, conn.Value("SHOW wal_level"));
    if (wal != "logical") {
      return PgStatus("55000", absl::StrCat("shard ", s, " runs with wal_level = ", wal),
                      "Set wal_level = logical on the source shards and restart them.");
    }
    for (const auto& t : plan.tables) {
      if (std::find(t.sources.begin(), t.sources.end(), s) == t.sources.end()) continue;
      ASSIGN_OR_RETURN(
          std::string ident,
          conn.Value(absl::StrCat("SELECT CASE WHEN c.relreplident = 'f' OR (c.relreplident = "
                                  "'d' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = "
                                  "c.oid AND i.indisprimary)) OR c.relreplident = 'i' THEN 'ok' "
                                  "END FROM pg_class c WHERE c.oid = to_regclass(",
                                  Lit(t.QuotedName()), ")")));
      if (ident != "ok") {
        return PgStatus("55000",
                        absl::StrCat("table ", t.name, " on ", s,
                                     " is missing or has no primary key: moved rows could not "
                                     "be matched"),
                        "Give the table a primary key.");
      }
    }
  }
  for (const auto& d : plan.Targets()) {
    ASSIGN_OR_RETURN(PgConn conn, ConnectShard(plan, d));
    for (const auto& t : plan.tables) {
      if (std::find(t.targets.begin(), t.targets.end(), d) == t.targets.end()) continue;
      ASSIGN_OR_RETURN(std::string exists,
                       conn.Value(absl::StrCat("SELECT to_regclass(", Lit(t.QuotedName()),
                                               ") IS NOT NULL")));
      if (exists != "t") {
        RETURN_IF_ERROR(CreateTableFrom(plan, t, t.sources.front(), conn));
        r.Event("created_table", {{"table", JsonString(t.name)}, {"shard", JsonString(d)}},
                absl::StrCat("created table ", t.name, " on ", d, " (pg_dump --schema-only)"));
      }
    }
  }
  return absl::OkStatus();
}

// One copy: the rows of `t` that `source` holds and the new map gives another shard, read in
// one scan from the snapshot (or a fresh one) with each row's new owner, and streamed to the
// owners' COPY. What an interrupted copy left on the targets is deleted first, in the same
// transaction. Returns the rows per target and the planner's estimate of the rows scanned.
struct CopyResult {
  std::map<std::string, int64_t> rows;  // target -> rows
  int64_t estimate = 0;
};

absl::StatusOr<CopyResult> CopyTable(const Plan& plan, const MovingTable& t,
                                                         const std::string& source,
                                                         const std::string& snapshot, Report& r,
                                                         ProgressFeed& feed) {
  ASSIGN_OR_RETURN(PgConn from, ConnectShard(plan, source));
  RETURN_IF_ERROR(from.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").status());
  if (!snapshot.empty()) {
    RETURN_IF_ERROR(from.Exec("SET TRANSACTION SNAPSHOT " + Lit(snapshot)).status());
  }
  ASSIGN_OR_RETURN(std::string cols,
                   from.Value(absl::StrCat(
                       "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM "
                       "pg_attribute WHERE attrelid = ", Lit(t.QuotedName()),
                       "::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''")));
  // For the progress bar only: the planner's estimate, not a second scan. EXPLAIN's rather than
  // pg_class.reltuples, which stays -1 until the table's first VACUUM or ANALYZE; the planner
  // scales it to the table's current size.
  ASSIGN_OR_RETURN(std::string plan_line,
                   from.Value(absl::StrCat("EXPLAIN SELECT * FROM ", t.QuotedName())));
  std::map<std::string, PgConn> conns;
  std::map<std::string, PgConn*> targets;
  for (const auto& d : t.targets) {
    if (d == source) continue;
    ASSIGN_OR_RETURN(PgConn to, ConnectShard(plan, d));
    RETURN_IF_ERROR(to.Exec("BEGIN").status());
    RETURN_IF_ERROR(to.Exec(absl::StrCat("DELETE FROM ", t.QuotedName(),
                                         t.reference ? "" : " WHERE (" + t.old_owner + ") = " +
                                                                Lit(source)))
                        .status());
    targets[d] = &conns.emplace(d, std::move(to)).first->second;
  }
  const std::string what = absl::StrCat(t.name, " from ", source);
  int64_t total = 0;
  if (const size_t at = plan_line.find(" rows="); at != std::string::npos) {
    (void)absl::SimpleAtoi(plan_line.substr(at + 6, plan_line.find(' ', at + 6) - at - 6),
                           &total);
  }
  const std::string scan = ScanKey(t, source);
  feed.SourceRows(scan, total);
  const std::string owner = t.reference ? "'*'" : "(" + t.new_owner + ")";
  const std::string where = t.reference ? "" : absl::StrCat(" WHERE ", owner, " <> ", Lit(source));
  ASSIGN_OR_RETURN(auto rows,
                   CopyRouted(from,
                              absl::StrCat("COPY (SELECT ", owner, ", ", cols, " FROM ",
                                           t.QuotedName(), where, ") TO STDOUT"),
                              targets,
                              absl::StrCat("COPY ", t.QuotedName(), " (", cols, ") FROM STDIN"),
                              [&](int64_t n) {
                                reshard::MaybeFault("copy_rows", n);
                                r.Progress(what, n, total);
                                feed.Rows(scan, n);
                                feed.Send("copying", false);
                              }));
  for (auto& [d, conn] : conns) RETURN_IF_ERROR(conn.Exec("COMMIT").status());
  RETURN_IF_ERROR(from.Exec("COMMIT").status());
  return CopyResult{std::move(rows), total};
}

// A source ready to copy from: its publication and slot exist; the snapshot the slot exported
// (empty when the slot already existed: a resumed copy reads a fresh snapshot) stays valid as
// long as `replication`, the connection that made it, is open.
struct SourceCopy {
  std::string source;
  std::optional<PgConn> replication;
  std::string snapshot;
};

absl::StatusOr<SourceCopy> PrepareSource(const Plan& plan, State& state,
                                         const std::string& source) {
  SourceCopy sc;
  sc.source = source;
  ASSIGN_OR_RETURN(PgConn conn, ConnectShard(plan, source));
  ASSIGN_OR_RETURN(std::string has_pub,
                   conn.Value("SELECT count(*) FROM pg_publication WHERE pubname = " +
                              Lit(state.Publication())));
  if (has_pub == "0") {
    std::vector<std::string> tables;
    for (const auto& t : plan.tables) {
      if (std::find(t.sources.begin(), t.sources.end(), source) != t.sources.end()) {
        tables.push_back(t.QuotedName());
      }
    }
    RETURN_IF_ERROR(conn.Exec(absl::StrCat("CREATE PUBLICATION ", state.Publication(),
                                           " FOR TABLE ", absl::StrJoin(tables, ", ")))
                        .status());
  }
  const std::string slot = state.SlotFor(source);
  ASSIGN_OR_RETURN(std::string has_slot,
                   conn.Value("SELECT count(*) FROM pg_replication_slots WHERE slot_name = " +
                              Lit(slot)));
  if (has_slot == "0") {
    ASSIGN_OR_RETURN(PgConn::Params p, plan.ShardParams(source));
    p["replication"] = "database";
    ASSIGN_OR_RETURN(sc.replication, PgConn::Connect(p));
    ASSIGN_OR_RETURN(PgResult created,
                     sc.replication->Exec(absl::StrCat("CREATE_REPLICATION_SLOT ", slot,
                                                       " LOGICAL pgoutput EXPORT_SNAPSHOT")));
    sc.snapshot = created.get(0, 2);
    state.slots[source] = slot;
    state.applied_lsn[source] = reshard::ParseLsn(created.get(0, 1));
    state.changes[source] = 0;
    RETURN_IF_ERROR(state.Save());
  }
  return sc;
}

// Every source's publication and slot, then the copies of every (table, source) not done yet,
// `jobs` at a time across all sources.
absl::Status CopyAll(const Plan& plan, State& state, int jobs, Report& r, ProgressFeed& feed) {
  std::vector<SourceCopy> sources;
  for (const auto& s : plan.Sources()) {
    ASSIGN_OR_RETURN(SourceCopy sc, PrepareSource(plan, state, s));
    sources.push_back(std::move(sc));
  }
  std::vector<std::pair<const MovingTable*, const SourceCopy*>> todo;
  for (const SourceCopy& sc : sources) {
    for (const auto& t : plan.tables) {
      if (std::find(t.sources.begin(), t.sources.end(), sc.source) == t.sources.end()) continue;
      for (const auto& d : t.targets) {
        if (d != sc.source && !state.copied.count(TaskKey(t, sc.source, d))) {
          todo.emplace_back(&t, &sc);
          break;
        }
      }
    }
  }
  std::mutex mu;
  size_t next = 0;
  absl::Status failed;
  auto worker = [&] {
    for (;;) {
      std::pair<const MovingTable*, const SourceCopy*> task;
      {
        std::lock_guard lock(mu);
        if (next >= todo.size() || !failed.ok()) return;
        task = todo[next++];
      }
      const auto& [t, sc] = task;
      // A copy starts by deleting what an earlier attempt left: a failed one is simply retried
      // (a server restarting, a connection lost), up to three times.
      auto copy = CopyTable(plan, *t, sc->source, sc->snapshot, r, feed);
      for (int attempt = 1; !copy.ok() && attempt < 3; ++attempt) {
        r.Event("retry",
                {{"table", JsonString(t->name)}, {"from", JsonString(sc->source)},
                 {"error", JsonString(std::string(copy.status().message()))}},
                absl::StrCat("copy of ", t->name, " from ", sc->source,
                             " failed, retrying: ", copy.status().message()));
        std::this_thread::sleep_for(std::chrono::seconds(attempt));
        copy = CopyTable(plan, *t, sc->source, sc->snapshot, r, feed);
      }
      std::lock_guard lock(mu);
      if (!copy.ok()) {
        failed = copy.status();
        return;
      }
      feed.Rows(ScanKey(*t, sc->source), 0);  // now counted per target
      state.estimates[ScanKey(*t, sc->source)] = copy->estimate;
      for (const auto& [d, n] : copy->rows) {
        state.copied[TaskKey(*t, sc->source, d)] = n;
        feed.Rows(TaskKey(*t, sc->source, d), n);
        r.Event("copied",
                {{"table", JsonString(t->name)}, {"from", JsonString(sc->source)},
                 {"to", JsonString(d)}, {"rows", Num(n)}},
                absl::StrCat("copied ", t->name, " ", sc->source, " -> ", d, ": ", n, " rows"));
      }
      absl::Status saved = state.Save();
      if (!saved.ok()) failed = saved;
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < std::max(1, jobs); ++i) threads.emplace_back(worker);
  for (auto& th : threads) th.join();
  return failed;
}

// Applies every source's stream up to its WAL position, all at once; again while
// `follow_seconds` last.
absl::Status CatchUpAll(const Plan& plan, State& state, double follow_seconds, Report& r,
                        ProgressFeed& feed) {
  ASSIGN_OR_RETURN(auto catchers, OpenCatchers(plan, state));
  const auto until = Clock::now() + std::chrono::milliseconds(
                                        static_cast<int64_t>(follow_seconds * 1000));
  do {
    RETURN_IF_ERROR(ForEachSource(plan, [&](const std::string& s) -> absl::Status {
      ASSIGN_OR_RETURN(reshard::CatchUpResult res, catchers[s]->Run(600000));
      r.Event("caught_up",
              {{"shard", JsonString(s)}, {"changes", Num(res.changes)},
               {"position", JsonString(reshard::FormatLsn(res.position))}},
              absl::StrCat("stream from ", s, ": ", res.changes, " changes applied, at ",
                           reshard::FormatLsn(res.position)));
      std::lock_guard lock(*state.mu);
      feed.Changes(s, state.changes[s]);
      return absl::OkStatus();
    }));
    feed.Send("catching_up", false);
    if (Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (Clock::now() < until);
  return absl::OkStatus();
}

}  // namespace

int StartStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, false);
  if (!c.ok()) return r.Fail(c.status());
  Plan& plan = c->plan;
  State& state = c->state;
  if (plan.tables.empty()) {
    return r.Fail(PgStatus("22023", "nothing to move: both maps give every row the same shard"));
  }
  if (!state.Exists()) {
    state.id = absl::StrCat(absl::Hex(static_cast<uint64_t>(std::time(nullptr))));
    state.phase = "copying";
    if (absl::Status st = state.Save(); !st.ok()) return r.Fail(st);
    r.Event("started", {{"id", JsonString(state.id)}, {"state", JsonString(state.path)}},
            absl::StrCat("reshard ", state.id, " started (state in ", state.path, ")"));
  } else {
    r.Event("resumed", {{"id", JsonString(state.id)}, {"phase", JsonString(state.phase)}},
            absl::StrCat("resuming reshard ", state.id, " (", state.phase, ")"));
  }
  ProgressFeed feed(plan.old_config, plan.database, r);
  feed.Seed(state);
  feed.Send(state.phase, true);
  if (state.phase == "copying") {
    if (absl::Status st = Preflight(plan, r); !st.ok()) return r.Fail(st);
    std::set<std::string> servers;
    for (const auto& s : plan.Sources()) servers.insert(s);
    for (const auto& s : plan.Targets()) servers.insert(s);
    for (const auto& s : servers) {
      auto conn = ConnectShard(plan, s);
      absl::Status st = conn.ok() ? InstallGuard(*conn, plan) : conn.status();
      if (!st.ok()) {
        r.Event("warning", {{"shard", JsonString(s)}, {"message", JsonString(std::string(st.message()))}},
                absl::StrCat("WARNING: no schema-change guard on ", s, ": ", st.message()));
      }
    }
    if (absl::Status st = CopyAll(plan, state, o.jobs, r, feed); !st.ok()) return r.Fail(st);
    state.phase = "catching_up";
    if (absl::Status st = state.Save(); !st.ok()) return r.Fail(st);
    feed.Send(state.phase, true);
  }
  if (state.phase != "catching_up") {
    return r.Fail(PgStatus("55000", "the reshard is past the copy (phase " + state.phase + ")",
                           "Run cleanup, or status."));
  }
  if (absl::Status st = CatchUpAll(plan, state, o.follow_seconds, r, feed); !st.ok()) {
    return r.Fail(st);
  }
  feed.Send(state.phase, true);
  r.Event("ready", {{"phase", JsonString(state.phase)}},
          "copy done and stream caught up: run `shardctl reshard verify`, then `cutover`");
  return 0;
}

// ---- status and verify

int StatusStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, true, true);
  if (!c.ok()) return r.Fail(c.status());
  const Plan& plan = c->plan;
  State& state = c->state;
  r.Event("status", {{"id", JsonString(state.id)}, {"phase", JsonString(state.phase)},
                     {"to", JsonString(state.to)}},
          absl::StrCat("reshard ", state.id, " to ", state.to, ": ", state.phase));
  for (const auto& [t, s, d] : CopyTasks(plan)) {
    auto it = state.copied.find(TaskKey(*t, s, d));
    const bool done = it != state.copied.end();
    r.Event("copy",
            {{"table", JsonString(t->name)}, {"from", JsonString(s)}, {"to", JsonString(d)},
             {"done", done ? "true" : "false"}, {"rows", Num(done ? it->second : 0)}},
            absl::StrCat("  copy ", t->name, " ", s, " -> ", d, ": ",
                         done ? absl::StrCat(it->second, " rows, done") : "pending"));
  }
  if (state.phase != "copying" && state.phase != "catching_up") return 0;
  for (const auto& s : plan.Sources()) {
    auto conn = ConnectShard(plan, s);
    if (!conn.ok()) return r.Fail(conn.status());
    auto lag = conn->ExecParams(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
        "(extract(epoch from now()) * 1000000)::bigint FROM pg_replication_slots "
        "WHERE slot_name = $1",
        {state.SlotFor(s)});
    if (!lag.ok()) return r.Fail(lag.status());
    if (lag->rows() == 0) {
      r.Event("stream", {{"shard", JsonString(s)}, {"slot", "null"}},
              absl::StrCat("  stream from ", s, ": no slot yet"));
      continue;
    }
    const int64_t bytes = std::stoll(lag->get(0, 0));
    // Seconds behind: since the last commit applied, when anything is left to apply.
    const int64_t now_us = std::stoll(lag->get(0, 1));
    const int64_t last = state.last_commit_us.count(s) ? state.last_commit_us[s] : 0;
    const double seconds =
        bytes > 0 && last > 0 ? std::max<double>(0, (now_us - (last + 946684800000000LL)) / 1e6)
                              : 0;
    r.Event("stream",
            {{"shard", JsonString(s)}, {"lag_bytes", Num(bytes)},
             {"lag_seconds", absl::StrCat(seconds)}, {"changes", Num(state.changes[s])}},
            absl::StrCat("  stream from ", s, ": ", state.changes[s], " changes applied, lag ",
                         bytes, " bytes, ", seconds, " s"));
  }
  return 0;
}

// Count and an order-independent checksum of a row set, by SQL on the server.
absl::StatusOr<std::pair<int64_t, std::string>> Digest(PgConn& conn, const MovingTable& t,
                                                       const std::string& where) {
  ASSIGN_OR_RETURN(
      PgResult res,
      conn.Exec(absl::StrCat("SELECT count(*), coalesce(sum(('x' || substr(md5(r::text), 1, 15))"
                             "::bit(60)::bigint), 0) FROM ", t.QuotedName(), " r WHERE ", where)));
  return std::make_pair(std::stoll(res.get(0, 0)), res.get(0, 1));
}

int VerifyStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, true, true);
  if (!c.ok()) return r.Fail(c.status());
  const Plan& plan = c->plan;
  const State& state = c->state;
  int mismatches = 0;
  const bool cleaned = state.phase == "done";
  if (!cleaned) {
    for (const auto& [t, s, d] : CopyTasks(plan)) {
      auto from = ConnectShard(plan, s);
      if (!from.ok()) return r.Fail(from.status());
      auto to = ConnectShard(plan, d);
      if (!to.ok()) return r.Fail(to.status());
      auto a = Digest(*from, *t, MovingFilter(*t, d));
      if (!a.ok()) return r.Fail(a.status());
      auto b = Digest(*to, *t, t->reference ? "true" : "(" + t->old_owner + ") = " + Lit(s));
      if (!b.ok()) return r.Fail(b.status());
      const bool same = *a == *b;
      mismatches += same ? 0 : 1;
      r.Event("verify",
              {{"table", JsonString(t->name)}, {"from", JsonString(s)}, {"to", JsonString(d)},
               {"source_rows", Num(a->first)}, {"target_rows", Num(b->first)},
               {"source_checksum", JsonString(a->second)},
               {"target_checksum", JsonString(b->second)}, {"match", same ? "true" : "false"}},
              absl::StrCat("  ", t->name, " ", s, " -> ", d, ": ", a->first, " / ", b->first,
                           " rows, checksums ", same ? "match" : "DIFFER"));
    }
  }
  if (state.phase == "switched" || state.phase == "done") {
    // Every row where the new map says.
    for (const auto& t : plan.tables) {
      if (t.reference) continue;
      for (int i = 0; i < plan.new_map->shard_count(); ++i) {
        const std::string& shard = plan.new_map->shard_name(i);
        auto conn = ConnectShard(plan, shard);
        if (!conn.ok()) return r.Fail(conn.status());
        auto misplaced = conn->Value(absl::StrCat("SELECT count(*) FROM ", t.QuotedName(),
                                                  " WHERE (", t.new_owner, ") <> ", Lit(shard)));
        if (!misplaced.ok()) return r.Fail(misplaced.status());
        const bool ok = *misplaced == "0" || !cleaned;
        mismatches += ok ? 0 : 1;
        r.Event("placement",
                {{"table", JsonString(t.name)}, {"shard", JsonString(shard)},
                 {"misplaced_rows", *misplaced}},
                absl::StrCat("  ", t.name, " on ", shard, ": ", *misplaced,
                             " rows the new map places elsewhere",
                             cleaned ? "" : " (old copies until cleanup)"));
      }
    }
  }
  if (state.phase == "catching_up" && mismatches > 0) {
    r.Event("note", {{"text", JsonString("writes still flow: a difference can be stream lag")}},
            "note: writes still go to the sources, so a difference can be stream lag; verify "
            "again, or after cutover");
  }
  r.Event("verified", {{"mismatches", Num(mismatches)}},
          mismatches == 0 ? "verify: all match" : absl::StrCat("verify: ", mismatches, " differ"));
  return mismatches == 0 ? 0 : 1;
}

}  // namespace steps

int ReshardCommand(const std::string& step, const ReshardOptions& options, std::ostream& out,
                   std::ostream& err) {
  using namespace steps;
  Report r(options.common.json, out, err);
  if (step == "plan") return PlanStep(options, r);
  if (step == "start") return StartStep(options, r);
  if (step == "status") return StatusStep(options, r);
  if (step == "verify") return VerifyStep(options, r);
  if (step == "cutover") return CutoverStep(options, r);
  if (step == "cleanup") return CleanupStep(options, r);
  if (step == "abort") return AbortStep(options, r);
  return r.Fail(PgStatus("42601", "unknown reshard step " + step));
}

}  // namespace shardgate::tools
