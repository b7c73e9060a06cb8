// Two-phase commit bookkeeping: the decision log file and recovery at start (see two_phase.h).
#include "proxy/two_phase.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "protocol/auth.h"
#include "protocol/status.h"
#include "proxy/health.h"
#include "proxy/server_connection.h"
#include "proxy/strings.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return PgStatus("58030", absl::StrCat(Av(what), " two-phase decision log \"", path,
                                        "\": ", std::strerror(errno)));
}

}  // namespace

std::string DecisionLogPath(const conf::Config& config) {
  if (!config.cross_shard.decision_log.empty()) return config.cross_shard.decision_log;
  std::filesystem::path dir;
  if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && *state != '\0') {
    dir = std::string(state).substr(0, std::string(state).find(':'));
  } else {
    dir = std::filesystem::path(config.path).parent_path();
  }
  return (dir / "shardgate-2pc.log").string();
}

std::string NodeName(const conf::Config& config) {
  if (!config.cross_shard.node.empty()) return config.cross_shard.node;
  std::string node = absl::StrCat(config.listen.host, "_", config.listen.port);
  for (char& c : node) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return node;
}

absl::StatusOr<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path,
                                                               std::string node) {
  absl::flat_hash_map<std::string, std::vector<std::string>> pending;
  {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && parts[0] == "commit") {
        pending[parts[1]] = std::vector<std::string>(parts.begin() + 2, parts.end());
      } else if (parts.size() == 2 && parts[0] == "done") {
        pending.erase(parts[1]);
      }
      // Anything else is a torn last line from a crash mid-write: no decision.
    }
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open", path);
  std::unique_ptr<DecisionLog> log(new DecisionLog(path, std::move(node), fd));
  log->pending_ = std::move(pending);
  log->epoch_ = absl::StrCat(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
  return log;
}

DecisionLog::~DecisionLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::string DecisionLog::NextGid() {
  std::lock_guard lock(mu_);
  return absl::StrCat(GidPrefix(), epoch_, "_", ++counter_);
}

absl::Status DecisionLog::AppendLine(std::string_view line, bool sync) {
  std::string text = absl::StrCat(Av(line), "\n");
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd_, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path_);
    }
    written += static_cast<size_t>(n);
  }
  if (sync && ::fdatasync(fd_) != 0) return Errno("cannot sync", path_);
  return absl::OkStatus();
}

absl::Status DecisionLog::Commit(std::string_view gid, const std::vector<std::string>& shards) {
  std::lock_guard lock(mu_);
  absl::Status st = AppendLine(absl::StrCat("commit ", Av(gid), " ", absl::StrJoin(shards, " ")),
                               true);
  if (st.ok()) pending_[std::string(gid)] = shards;
  return st;
}

void DecisionLog::Done(std::string_view gid) {
  std::lock_guard lock(mu_);
  pending_.erase(std::string(gid));
  absl::Status st = AppendLine(absl::StrCat("done ", Av(gid)), false);
  if (!st.ok()) spdlog::warn("{}", std::string(st.message()));
}

absl::flat_hash_map<std::string, std::vector<std::string>> DecisionLog::Pending() const {
  std::lock_guard lock(mu_);
  return pending_;
}

absl::Status DecisionLog::Compact() {
  std::lock_guard lock(mu_);
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  std::string text;
  for (const auto& [gid, shards] : pending_) {
    absl::StrAppend(&text, "commit ", gid, " ", absl::StrJoin(shards, " "), "\n");
  }
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) return Errno("cannot rewrite", path_);
  const int new_fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (new_fd < 0) return Errno("cannot reopen", path_);
  ::close(fd_);
  fd_ = new_fd;
  return absl::OkStatus();
}

namespace {

// Resolves this node's prepared transactions on one shard primary.
asio::awaitable<absl::Status> RecoverShard(const conf::Config& config, const std::string& db,
                                           const conf::ShardConfig& shard, DecisionLog& log,
                                           const std::shared_ptr<const ServerTls>& tls,
                                           int* resolved) {
  BackendTarget admin = HealthTarget(config, db, shard.name, shard.primary);
  auto conn = co_await ServerConnection::Connect(admin, config.timeouts.connect, tls);
  if (!conn.ok()) co_return conn.status();
  const std::string prefix = log.GidPrefix();
  auto row = co_await (*conn)->SimpleQuery(absl::StrCat(
      "SELECT string_agg(gid || ' ' || owner, ',') FROM pg_prepared_xacts WHERE "
      "database = current_database() AND starts_with(gid, '", prefix, "')"));
  if (!row.ok()) co_return row.status();
  if (row->empty() || !(*row)[0].has_value()) co_return absl::OkStatus();
  const auto pending = log.Pending();
  for (absl::string_view item : absl::StrSplit(*(*row)[0], ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> gid_owner = absl::StrSplit(item, ' ');
    const auto& [gid, owner] = gid_owner;
    const bool commit = pending.contains(gid);
    // COMMIT/ROLLBACK PREPARED must come from the user that prepared it (or a superuser).
    BackendTarget as = admin;
    if (owner != admin.user) {
      const conf::UserConfig* user = config.FindUser(owner);
      if (user == nullptr || protocol::IsScramVerifier(user->password)) {
        spdlog::error("two-phase recovery: shard \"{}\": cannot log in as \"{}\" to resolve {}",
                      shard.name, owner, gid);
        continue;
      }
      as.user = user->name;
      as.password = user->password;
    }
    auto owner_conn = co_await ServerConnection::Connect(as, config.timeouts.connect, tls);
    if (!owner_conn.ok()) co_return owner_conn.status();
    auto done = co_await (*owner_conn)->SimpleQuery(
        absl::StrCat(commit ? "COMMIT PREPARED '" : "ROLLBACK PREPARED '", gid, "'"));
    (*owner_conn)->Close();
    if (!done.ok()) co_return done.status();
    spdlog::warn("two-phase recovery: shard \"{}\": {} {}", shard.name,
                 commit ? "committed" : "rolled back", gid);
    ++*resolved;
  }
  (*conn)->Close();
  co_return absl::OkStatus();
}

}  // namespace

absl::Status RecoverInDoubt(const conf::Config& config, DecisionLog& log,
                            std::shared_ptr<const ServerTls> tls) {
  asio::io_context io;
  bool all_reached = true;
  int resolved = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (const auto& [name, db] : config.databases) {
          if (!db.Sharded()) continue;
          for (const conf::ShardConfig& shard : db.shards) {
            absl::Status st = co_await RecoverShard(config, name, shard, log, tls, &resolved);
            if (!st.ok()) {
              all_reached = false;
              spdlog::error("two-phase recovery: shard \"{}\" of \"{}\": {}", shard.name, name,
                            std::string(st.message()));
            }
          }
        }
      },
      [](std::exception_ptr e) {
        if (e) spdlog::error("two-phase recovery ended with an exception");
      });
  io.run();
  if (resolved > 0) spdlog::warn("two-phase recovery: resolved {} prepared transactions", resolved);
  if (!all_reached) {
    return PgStatus("08001", "two-phase recovery could not reach every shard; decisions kept");
  }
  for (const auto& [gid, shards] : log.Pending()) log.Done(gid);
  return log.Compact();
}

}  // namespace shardgate::proxy
