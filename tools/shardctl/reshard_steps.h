// Internal to `shardctl reshard` (reshard.cc, reshard_cutover.cc): the report printer, the
// state-and-plan context every step opens, and helpers the steps share.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "protocol/status.h"
#include "routing/router.h"
#include "tools/shardctl/reshard.h"

namespace shardgate::tools::steps {

using reshard::MovingTable;
using reshard::Plan;
using reshard::State;
using Clock = std::chrono::steady_clock;

// A string literal (routing's: E'' when there is a backslash).
inline std::string Lit(std::string_view s) { return routing::owner_sql::Literal(s); }

inline int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Reports in text (with a progress line on a terminal) or as JSON lines (--json).
class Report {
 public:
  Report(bool json, std::ostream& out, std::ostream& err)
      : json_(json), tty_(!json && isatty(STDOUT_FILENO)), out_(out), err_(err) {}

  // One event: `fields` as (name, JSON value) pairs; `text` the human line.
  void Event(const std::string& event, const std::vector<std::pair<std::string, std::string>>& fields,
             const std::string& text) {
    std::lock_guard lock(mu_);
    if (json_) {
      out_ << "{\"event\": " << JsonString(event);
      for (const auto& [k, v] : fields) out_ << ", " << JsonString(k) << ": " << v;
      out_ << "}\n";
    } else {
      if (progress_shown_) out_ << "\n";
      progress_shown_ = false;
      out_ << text << "\n";
    }
    out_.flush();
  }
  // A progress bar (terminal only).
  void Progress(const std::string& what, int64_t done, int64_t total) {
    if (!tty_) return;
    std::lock_guard lock(mu_);
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(std::min<int64_t>(width, done * width / total))
                                 : width;
    out_ << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] " << what
         << " " << done << "/" << total << " rows   ";
    out_.flush();
    progress_shown_ = true;
  }
  int Fail(const absl::Status& status) {
    PgError e = ToPgError(status);
    std::lock_guard lock(mu_);
    if (json_) {
      out_ << "{\"error\": {\"sqlstate\": " << JsonString(e.sqlstate)
           << ", \"message\": " << JsonString(e.message) << ", \"hint\": " << JsonString(e.hint)
           << "}}\n";
    } else {
      if (progress_shown_) out_ << "\n";
      err_ << "ERROR " << e.sqlstate << ": " << e.message << "\n";
      if (!e.hint.empty()) err_ << "HINT: " << e.hint << "\n";
    }
    return 1;
  }
  bool json() const { return json_; }

 private:
  bool json_, tty_;
  std::ostream& out_;
  std::ostream& err_;
  std::mutex mu_;
  bool progress_shown_ = false;
};

inline std::string Num(int64_t v) { return std::to_string(v); }

inline absl::StatusOr<PgConn> ConnectShard(const Plan& plan, const std::string& shard) {
  ASSIGN_OR_RETURN(PgConn::Params p, plan.ShardParams(shard));
  return PgConn::Connect(p);
}

inline std::string StatePath(const ReshardOptions& o, const conf::Config& config) {
  if (!o.state.empty()) return o.state;
  if (!config.reshard.state.empty()) return config.reshard.state;
  return o.common.config_path + ".reshard";
}

// The state, the plan it was started with, and what the command line says.
struct Context {
  Plan plan;
  State state;
};

// `need_state`: a reshard must have been started; `finished_ok`: one that ended (done or
// aborted) is still read (status, verify).
inline absl::StatusOr<Context> Open(const ReshardOptions& o, bool need_state, bool finished_ok = false) {
  ASSIGN_OR_RETURN(std::shared_ptr<const conf::Config> config,
                   conf::LoadFile(o.common.config_path));
  Context c;
  ASSIGN_OR_RETURN(c.state, State::Load(StatePath(o, *config)));
  const bool live = c.state.Exists() &&
                    (finished_ok || (c.state.phase != "done" && c.state.phase != "aborted"));
  std::string to = o.to;
  if (live) {
    if (!to.empty() && std::filesystem::absolute(to).string() != c.state.to) {
      return PgStatus("55000",
                      absl::StrCat("a reshard to ", c.state.to, " is in progress (state in ",
                                   c.state.path, ")"),
                      "Finish it (cutover, cleanup) or abort it first.");
    }
    to = c.state.to;
  } else if (need_state) {
    return PgStatus("55000", absl::StrCat("no reshard in progress (state file ", c.state.path,
                                          c.state.Exists() ? " says " + c.state.phase : "",
                                          ")"),
                    "Run shardctl reshard start --to NEW.yaml first.");
  }
  if (to.empty()) return PgStatus("42601", "--to NEW.yaml is required");
  // After a cutover the config file holds the new map; the old one was kept beside it.
  const auto old_map = c.state.facts.find("old_map");
  const std::string old_path = live && old_map != c.state.facts.end() ? old_map->second
                                                                      : o.common.config_path;
  ASSIGN_OR_RETURN(c.plan, reshard::BuildPlan(old_path, to, o.common.database));
  if (!live) {
    c.state = State{};
    c.state.path = StatePath(o, *config);
    c.state.to = std::filesystem::absolute(to).string();
    c.state.database = c.plan.database;
  }
  return c;
}

// "table S T" keys of every copy a reshard makes.
inline std::vector<std::tuple<const MovingTable*, std::string, std::string>> CopyTasks(const Plan& p) {
  std::vector<std::tuple<const MovingTable*, std::string, std::string>> tasks;
  for (const auto& t : p.tables) {
    for (const auto& s : t.sources) {
      for (const auto& d : t.targets) {
        if (s != d) tasks.emplace_back(&t, s, d);
      }
    }
  }
  return tasks;
}

inline std::string TaskKey(const MovingTable& t, const std::string& s, const std::string& d) {
  return absl::StrCat(t.name, " ", s, " ", d);
}

// "table S": one scan of a source, which feeds every target's copy.
inline std::string ScanKey(const MovingTable& t, const std::string& s) {
  return absl::StrCat(t.name, " ", s);
}

// The rows of `t` on source `s` that belong to `d` under the new map.
inline std::string MovingFilter(const MovingTable& t, const std::string& d) {
  return t.reference ? "true" : absl::StrCat("(", t.new_owner, ") = ", Lit(d));
}

inline absl::Status DropGuard(PgConn& conn) {
  for (const char* event : {"ddl_command_end", "sql_drop"}) {
    RETURN_IF_ERROR(
        conn.Exec(absl::StrCat("DROP EVENT TRIGGER IF EXISTS shardgate_reshard_guard_", event))
            .status());
  }
  return conn.Exec("DROP FUNCTION IF EXISTS public.shardgate_reshard_guard()").status();
}

// Runs `fn(source)` for every source shard at once (each on its own connections); the first
// error is returned.
inline absl::Status ForEachSource(const Plan& plan,
                           const std::function<absl::Status(const std::string&)>& fn) {
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  for (const auto& s : plan.Sources()) {
    threads.emplace_back([&, s] {
      absl::Status st = fn(s);
      std::lock_guard lock(mu);
      if (first.ok()) first = st;
    });
  }
  for (auto& t : threads) t.join();
  return first;
}

// Opens every source's stream (they stay open: reopening decodes again from the slot's
// restart point).
inline absl::StatusOr<std::map<std::string, std::unique_ptr<reshard::Catcher>>> OpenCatchers(
    const Plan& plan, State& state) {
  std::map<std::string, std::unique_ptr<reshard::Catcher>> catchers;
  for (const auto& s : plan.Sources()) {
    ASSIGN_OR_RETURN(catchers[s], reshard::Catcher::Open(plan, state, s));
  }
  return catchers;
}


// ---- the proxies (reshard_proxies.cc)

// A proxy's admin console, as the config's admin user.
struct Proxy {
  std::string address;
  PgConn conn;
};

// Every proxy of `config` (reshard.proxies, else its own listen address).
absl::StatusOr<std::vector<Proxy>> ConnectProxies(const conf::Config& config,
                                                   int connect_timeout_s = 5);

// Tells the proxies how a reshard goes (RESHARD PROGRESS, for their SHOW RESHARD and /metrics):
// at most once a second unless forced, best effort: a proxy that cannot be reached is warned
// about once and tried again 30 s later (connecting waits at most 2 s, and a copy thread that
// finds another one sending does not wait); the reshard never fails on it.
// Contract: thread-safe (the copies report from several threads).
class ProgressFeed {
 public:
  ProgressFeed(std::shared_ptr<const conf::Config> config, std::string database, Report& r)
      : config_(std::move(config)), database_(std::move(database)), r_(r) {}

  // The counts the state holds (finished copies and their scans' estimates, changes applied),
  // as a resumed step starts.
  void Seed(const State& state);
  // Rows a copy task (TaskKey, or ScanKey while it runs) has written so far / in all.
  void Rows(const std::string& task, int64_t rows);
  // The planner's estimate of the rows one scan (ScanKey) reads.
  void SourceRows(const std::string& scan, int64_t rows);
  // Changes applied from a source's stream, in all.
  void Changes(const std::string& source, int64_t changes);
  // Sends now when `force` or a second has passed since the last send.
  void Send(const std::string& phase, bool force);

 private:
  std::shared_ptr<const conf::Config> config_;
  std::string database_;
  Report& r_;
  std::mutex mu_;  // the counts
  std::map<std::string, int64_t> rows_, source_rows_, changes_;
  std::mutex send_mu_;  // the rest: one sender at a time
  std::vector<Proxy> proxies_;
  Clock::time_point last_send_{}, last_connect_{};
  bool warned_ = false;
  // The reshard goes on without the proxies: one warning per run (`proxy`: the address that
  // failed, empty when connecting to them failed).
  void WarnOnce(const std::string& proxy, const absl::Status& st);
};

// One forced report of the state's phase and counts (cutover, cleanup, abort).
void ReportPhase(const Plan& plan, const State& state, Report& r);

// The steps (one per `shardctl reshard` subcommand); each returns the exit code.
int PlanStep(const ReshardOptions& o, Report& r);
int StartStep(const ReshardOptions& o, Report& r);
int StatusStep(const ReshardOptions& o, Report& r);
int VerifyStep(const ReshardOptions& o, Report& r);
int CutoverStep(const ReshardOptions& o, Report& r);
int CleanupStep(const ReshardOptions& o, Report& r);
int AbortStep(const ReshardOptions& o, Report& r);

}  // namespace shardgate::tools::steps
