// `shardctl reshard cutover`, `cleanup` and `abort`: the proxies' pause and switch, and
// removing what a reshard leaves behind.
#include <algorithm>
#include <set>

#include "absl/strings/str_join.h"
#include "tools/shardctl/reshard_steps.h"

namespace shardgate::tools::steps {
namespace {

// ---- cutover

void ResumeAll(std::vector<Proxy>& proxies, const std::string& db) {
  for (auto& p : proxies) (void)p.conn.Exec("RESHARD RESUME " + db);
}

absl::Status DropReplication(const Plan& plan, const State& state) {
  std::set<std::string> servers;
  for (const auto& s : plan.Sources()) servers.insert(s);
  for (const auto& s : plan.Targets()) servers.insert(s);
  for (const auto& s : servers) {
    ASSIGN_OR_RETURN(PgConn conn, ConnectShard(plan, s));
    // A stream that just closed may hold the slot a moment longer (its walsender exits).
    for (int attempt = 0;; ++attempt) {
      absl::Status dropped = conn.ExecParams("SELECT pg_drop_replication_slot(slot_name) FROM "
                                             "pg_replication_slots WHERE slot_name = $1",
                                             {state.SlotFor(s)})
                                 .status();
      if (dropped.ok()) break;
      if (SqlState(dropped) != "55006" || attempt >= 100) return dropped;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    RETURN_IF_ERROR(conn.Exec("DROP PUBLICATION IF EXISTS " + state.Publication()).status());
    RETURN_IF_ERROR(DropGuard(conn));
  }
  return absl::OkStatus();
}

absl::Status Cleanup(const Plan& plan, State& state, Report& r) {
  RETURN_IF_ERROR(DropReplication(plan, state));
  for (const auto& t : plan.tables) {
    if (t.reference) continue;
    for (const auto& s : t.sources) {
      ASSIGN_OR_RETURN(PgConn conn, ConnectShard(plan, s));
      ASSIGN_OR_RETURN(PgResult res, conn.Exec(absl::StrCat("DELETE FROM ", t.QuotedName(),
                                                            " WHERE (", t.new_owner, ") <> ",
                                                            Lit(s))));
      (void)res;
      ASSIGN_OR_RETURN(std::string left, conn.Value(absl::StrCat(
                                             "SELECT count(*) FROM ", t.QuotedName())));
      r.Event("cleaned", {{"table", JsonString(t.name)}, {"shard", JsonString(s)},
                          {"rows_left", left}},
              absl::StrCat("cleanup: moved rows of ", t.name, " deleted from ", s, " (", left,
                           " rows stay)"));
    }
  }
  state.phase = "done";
  RETURN_IF_ERROR(state.Save());
  ReportPhase(plan, state, r);
  r.Event("done", {{"phase", JsonString("done")}}, "reshard done: slots, publications and moved rows removed");
  return absl::OkStatus();
}

}  // namespace

int CutoverStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, true);
  if (!c.ok()) return r.Fail(c.status());
  Plan& plan = c->plan;
  State& state = c->state;
  if (state.phase == "switched") {
    // A cutover that switched but died before cleanup: only cleanup is left.
    if (o.keep_old_rows) return 0;
    if (absl::Status st = Cleanup(plan, state, r); !st.ok()) return r.Fail(st);
    return 0;
  }
  if (state.phase != "catching_up") {
    return r.Fail(PgStatus("55000", "the copy has not finished (phase " + state.phase + ")",
                           "Run shardctl reshard start (it resumes) first."));
  }
  // 1. Catch up while writes flow, so that little is left for the pause: every source at
  //    once, twice (the second pass only takes what came during the first).
  auto catchers = OpenCatchers(plan, state);
  if (!catchers.ok()) return r.Fail(catchers.status());
  for (int pass = 0; pass < 2; ++pass) {
    absl::Status st = ForEachSource(plan, [&](const std::string& s) -> absl::Status {
      ASSIGN_OR_RETURN(reshard::CatchUpResult res,
                       (*catchers)[s]->Run(static_cast<int64_t>(o.timeout_seconds * 1000)));
      if (!res.reached) {
        return PgStatus("57014", absl::StrCat("the stream from ", s, " did not catch up within ",
                                              o.timeout_seconds, " s"),
                        "Writes arrive faster than they are applied: retry at a quieter time, "
                        "or raise --timeout.");
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return r.Fail(st);
  }
  auto proxies = ConnectProxies(*plan.old_config);
  if (!proxies.ok()) return r.Fail(proxies.status());
  std::set<std::string> tables;
  for (const auto& t : plan.tables) tables.insert(t.name);
  const int64_t pause_max = plan.old_config->reshard.pause_max.count();
  const std::string db = plan.database;
  // 2. Pause writes to the moving tables on every proxy.
  const auto t0 = Clock::now();
  std::vector<std::string> drained;
  for (auto& p : *proxies) {
    auto res = p.conn.Exec(absl::StrCat("RESHARD PAUSE ", db, " ", absl::StrJoin(tables, ","),
                                        " ", pause_max));
    if (!res.ok()) {
      ResumeAll(*proxies, db);
      return r.Fail(PgStatus("55000", absl::StrCat("proxy ", p.address, ": ", res.status().message()),
                             "Writes resumed on the old map; run cutover again."));
    }
    drained.push_back(res->get(0, 2));
  }
  const int64_t paused_ms = MsSince(t0);
  // 3. Drain every source's stream past a marker committed now: after it come only
  //    transactions the old map did not accept. All sources at once.
  absl::Status drain = ForEachSource(plan, [&](const std::string& s) -> absl::Status {
    const int64_t left = std::max<int64_t>(1, pause_max - MsSince(t0) - 200);
    ASSIGN_OR_RETURN(reshard::CatchUpResult res, (*catchers)[s]->Run(left));
    if (!res.reached) {
      return PgStatus("57014", absl::StrCat("the stream from ", s,
                                            " did not drain within the pause (", pause_max,
                                            " ms)"));
    }
    return absl::OkStatus();
  });
  if (!drain.ok()) {
    ResumeAll(*proxies, db);
    return r.Fail(PgStatus(SqlState(drain), StdView(drain.message()),
                           "Writes resumed on the old map; run cutover again (the stream keeps "
                           "catching up), or raise reshard.pause_max."));
  }
  const int64_t drained_ms = MsSince(t0);
  // 4. Switch every proxy to the new map; on a failure switch back the ones that did.
  const std::string old_path = std::filesystem::absolute(o.common.config_path).string();
  size_t switched = 0;
  for (; switched < proxies->size(); ++switched) {
    auto res = (*proxies)[switched].conn.Exec(absl::StrCat("RESHARD SWITCH ", db, " ", state.to));
    if (!res.ok()) {
      for (size_t i = 0; i < switched; ++i) {
        (void)(*proxies)[i].conn.Exec(absl::StrCat("RESHARD SWITCH ", db, " ", old_path));
      }
      ResumeAll(*proxies, db);
      return r.Fail(PgStatus("55000", absl::StrCat("proxy ", (*proxies)[switched].address, ": ",
                                                   res.status().message()),
                             "Writes resumed on the old map; fix the proxy and run cutover again."));
    }
  }
  const int64_t switched_ms = MsSince(t0);
  state.phase = "switched";
  (void)state.Save();
  ResumeAll(*proxies, db);
  const int64_t pause_ms = MsSince(t0);
  state.facts["pause_ms"] = Num(pause_ms);
  (void)state.Save();
  ReportPhase(plan, state, r);
  // The running config file becomes the new map (the old one kept beside it), so that a
  // reload or restart of a proxy on this host keeps the new map.
  std::error_code ec;
  const std::string backup = o.common.config_path + ".before-reshard";
  std::filesystem::copy_file(o.common.config_path, backup,
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (!ec) {
    // From here on the old map is read from the backup (cleanup, verify).
    state.facts["old_map"] = std::filesystem::absolute(backup).string();
    (void)state.Save();
    std::filesystem::copy_file(state.to, o.common.config_path + ".tmp",
                               std::filesystem::copy_options::overwrite_existing, ec);
  }
  if (!ec) std::filesystem::rename(o.common.config_path + ".tmp", o.common.config_path, ec);
  r.Event("cutover",
          {{"pause_ms", Num(pause_ms)}, {"paused_at_ms", Num(paused_ms)},
           {"drained_at_ms", Num(drained_ms)}, {"switched_at_ms", Num(switched_ms)},
           {"proxies", Num(static_cast<int64_t>(proxies->size()))},
           {"drained_us", JsonString(absl::StrJoin(drained, ","))},
           {"config_replaced", ec ? "false" : "true"}},
          absl::StrCat("cutover done: writes to ", absl::StrJoin(tables, ", "), " paused ", pause_ms,
                       " ms on ", proxies->size(), " proxies (all paused at ", paused_ms,
                       " ms, streams drained at ", drained_ms, " ms, maps switched at ",
                       switched_ms, " ms); ",
                       ec ? "could not replace " + o.common.config_path + ": " + ec.message()
                          : o.common.config_path + " now holds the new map (old one in .before-reshard)"));
  catchers->clear();  // the streams let go of the slots
  if (o.keep_old_rows) return 0;
  if (absl::Status st = Cleanup(plan, state, r); !st.ok()) return r.Fail(st);
  return 0;
}

int CleanupStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, true);
  if (!c.ok()) return r.Fail(c.status());
  if (c->state.phase != "switched") {
    return r.Fail(PgStatus("55000", "cleanup comes after cutover (phase " + c->state.phase + ")",
                           "Before cutover, abort undoes a reshard."));
  }
  if (absl::Status st = Cleanup(c->plan, c->state, r); !st.ok()) return r.Fail(st);
  return 0;
}

int AbortStep(const ReshardOptions& o, Report& r) {
  auto c = Open(o, true);
  if (!c.ok()) return r.Fail(c.status());
  Plan& plan = c->plan;
  State& state = c->state;
  if (state.phase == "switched") {
    return r.Fail(PgStatus("55000", "the proxies already serve the new map: too late to abort",
                           "Run shardctl reshard cleanup."));
  }
  if (absl::Status st = DropReplication(plan, state); !st.ok()) return r.Fail(st);
  // What the copy and the stream brought: rows a target does not own under the old map.
  for (const auto& t : plan.tables) {
    for (const auto& d : t.targets) {
      const bool new_shard = !plan.old_map->FindShard(d).has_value();
      if (t.reference && !new_shard) continue;
      auto conn = ConnectShard(plan, d);
      if (!conn.ok()) return r.Fail(conn.status());
      auto exists = conn->Value(absl::StrCat("SELECT to_regclass(", Lit(t.QuotedName()), ") IS NOT NULL"));
      if (!exists.ok()) return r.Fail(exists.status());
      if (*exists != "t") continue;
      const std::string where =
          t.reference ? "" : absl::StrCat(" WHERE (", t.old_owner, ") IS DISTINCT FROM ", Lit(d));
      auto res = conn->Exec(absl::StrCat("DELETE FROM ", t.QuotedName(), where));
      if (!res.ok()) return r.Fail(res.status());
    }
  }
  state.phase = "aborted";
  if (absl::Status st = state.Save(); !st.ok()) return r.Fail(st);
  ReportPhase(plan, state, r);
  r.Event("aborted", {{"phase", JsonString("aborted")}},
          "reshard aborted: copied rows, slots and publications removed; the old map serves as before");
  return 0;
}

}  // namespace shardgate::tools::steps
