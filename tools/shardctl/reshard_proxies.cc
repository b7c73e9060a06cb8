// `shardctl reshard` and the proxies' admin consoles: connecting, and the progress feed.
#include "absl/strings/str_cat.h"
#include "tools/shardctl/reshard_steps.h"

namespace shardgate::tools::steps {

absl::StatusOr<std::vector<Proxy>> ConnectProxies(const conf::Config& config,
                                                   int connect_timeout_s) {
  std::vector<conf::ListenConfig> addresses = config.reshard.proxies;
  if (addresses.empty()) addresses.push_back(config.listen);
  if (config.admin.users.empty()) {
    return PgStatus("28000", "no admin user in the config: shardctl drives the proxies as one",
                    "Add admin: {users: [admin]} and that user to users:.");
  }
  const conf::UserConfig* admin = config.FindUser(config.admin.users.front());
  std::vector<Proxy> proxies;
  for (const auto& a : addresses) {
    PgConn::Params p = {{"host", a.host}, {"port", std::to_string(a.port)},
                        {"dbname", "shardgate"}, {"user", config.admin.users.front()},
                        {"connect_timeout", std::to_string(connect_timeout_s)},
                        {"application_name", "shardctl"}};
    if (admin != nullptr && !admin->password.empty()) p["password"] = admin->password;
    ASSIGN_OR_RETURN(PgConn conn, PgConn::Connect(p));
    proxies.push_back({absl::StrCat(a.host, ":", a.port), std::move(conn)});
  }
  return proxies;
}

void ProgressFeed::Seed(const State& state) {
  std::lock_guard lock(mu_);
  for (const auto& [task, n] : state.copied) rows_[task] = n;
  for (const auto& [scan, n] : state.estimates) source_rows_[scan] = n;
  for (const auto& [source, n] : state.changes) changes_[source] = n;
}

void ProgressFeed::Rows(const std::string& task, int64_t rows) {
  std::lock_guard lock(mu_);
  rows_[task] = rows;
}

void ProgressFeed::SourceRows(const std::string& scan, int64_t rows) {
  std::lock_guard lock(mu_);
  source_rows_[scan] = rows;
}

void ProgressFeed::Changes(const std::string& source, int64_t changes) {
  std::lock_guard lock(mu_);
  changes_[source] = changes;
}

void ProgressFeed::Send(const std::string& phase, bool force) {
  // A copy thread that finds another one sending goes on copying.
  std::unique_lock sending(send_mu_, std::defer_lock);
  if (force) {
    sending.lock();
  } else if (!sending.try_lock()) {
    return;
  }
  const auto now = Clock::now();
  if (!force && now - last_send_ < std::chrono::seconds(1)) return;
  last_send_ = now;
  if (proxies_.empty()) {
    // Not again within 30 s of a failed attempt, but always for a forced (phase) report.
    if (!force && last_connect_ != Clock::time_point{} &&
        now - last_connect_ < std::chrono::seconds(30)) {
      return;
    }
    last_connect_ = now;
    auto proxies = ConnectProxies(*config_, 2);
    if (!proxies.ok()) {
      WarnOnce("", proxies.status());
      return;
    }
    proxies_ = std::move(*proxies);
  }
  auto sum = [](const std::map<std::string, int64_t>& m) {
    int64_t n = 0;
    for (const auto& [k, v] : m) n += v;
    return n;
  };
  std::string command;
  {
    std::lock_guard lock(mu_);
    command = absl::StrCat("RESHARD PROGRESS ", database_, " ", phase, " ", sum(rows_), " ",
                           sum(source_rows_), " ", sum(changes_));
  }
  for (Proxy& p : proxies_) {
    if (absl::Status st = p.conn.Exec(command).status(); !st.ok()) {
      WarnOnce(p.address, st);
      proxies_.clear();  // connect again later
      return;
    }
  }
}

void ProgressFeed::WarnOnce(const std::string& proxy, const absl::Status& st) {
  if (warned_) return;
  warned_ = true;
  std::vector<std::pair<std::string, std::string>> fields;
  if (!proxy.empty()) fields.emplace_back("proxy", JsonString(proxy));
  fields.emplace_back("message", JsonString(std::string(st.message())));
  r_.Event("warning", fields,
           absl::StrCat("WARNING: cannot report progress to ",
                        proxy.empty() ? "the proxies" : proxy, ": ", st.message()));
}

void ReportPhase(const Plan& plan, const State& state, Report& r) {
  ProgressFeed feed(plan.old_config, plan.database, r);
  feed.Seed(state);
  feed.Send(state.phase, true);
}

}  // namespace shardgate::tools::steps
