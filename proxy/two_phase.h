// Two-phase commit across shards: transaction ids, the durable decision log, and recovery of
// in-doubt transactions when the proxy starts.
//
// Protocol (presumed abort): PREPARE TRANSACTION '<gid>' on every shard that took part; only when
// all succeeded is "commit <gid> <shards>" appended to the log and fsynced — that line is the
// decision; then COMMIT PREPARED on each shard, then "done <gid>". A crash before the decision
// leaves prepared transactions with no log line: recovery rolls them back. A crash after it:
// recovery commits them. Ids are "sg_<node>_<start time>_<counter>", so a proxy only ever
// resolves its own (proxies sharing shards have distinct nodes).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "conf/config.h"
#include "proxy/server_tls.h"

namespace shardgate::proxy {

// Contract: shared by every worker thread (internally locked); Commit() returns only after the
// decision is on disk.
class DecisionLog {
 public:
  // Opens (creating) the log at `path`; reads the decisions not yet marked done.
  static absl::StatusOr<std::unique_ptr<DecisionLog>> Open(const std::string& path,
                                                           std::string node);
  ~DecisionLog();

  // A new transaction id for this node.
  std::string NextGid();
  // The gid prefix this node owns ("sg_<node>_").
  std::string GidPrefix() const { return "sg_" + node_ + "_"; }

  // The commit decision for `gid` (fsynced). Errors: the write failed (commit must not proceed).
  absl::Status Commit(std::string_view gid, const std::vector<std::string>& shards);
  // `gid` is committed everywhere (not fsynced: at worst recovery finds nothing to do).
  void Done(std::string_view gid);

  // Decisions logged and not done: gid -> shard names.
  absl::flat_hash_map<std::string, std::vector<std::string>> Pending() const;
  // Rewrites the log with only the pending decisions (at start, after recovery).
  absl::Status Compact();

  const std::string& path() const { return path_; }

 private:
  DecisionLog(std::string path, std::string node, int fd)
      : path_(std::move(path)), node_(std::move(node)), fd_(fd) {}
  absl::Status AppendLine(std::string_view line, bool sync);

  std::string path_;
  std::string node_;
  int fd_ = -1;
  mutable std::mutex mu_;
  uint64_t counter_ = 0;
  std::string epoch_;
  absl::flat_hash_map<std::string, std::vector<std::string>> pending_;
};

// The decision log file for `config` (see conf::CrossShardConfig::decision_log).
std::string DecisionLogPath(const conf::Config& config);
// This proxy's node name (see conf::CrossShardConfig::node).
std::string NodeName(const conf::Config& config);

// At start: for every sharded database and shard primary, COMMIT PREPARED the transactions the
// log decided and ROLLBACK PREPARED every other prepared transaction of this node; then compacts
// the log. Shards that cannot be reached are logged and retried by the next start (their
// decisions stay in the log). Runs its own io_context; call before serving. Connections use
// `tls` (the config's server_tls context; null: plain).
absl::Status RecoverInDoubt(const conf::Config& config, DecisionLog& log,
                            std::shared_ptr<const ServerTls> tls = nullptr);

}  // namespace shardgate::proxy
