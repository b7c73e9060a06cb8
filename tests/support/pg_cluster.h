// Real PostgreSQL 15 servers for integration tests: initdb into a temp dir, free loopback ports,
// primaries with streaming replicas, and a shardgate process in front. Everything started here
// is stopped in the destructors, also when a test fails. When running as root, the servers run
// as the unprivileged `postgres` user (initdb refuses root).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardgate::testing {

// Roles every server gets (created on the primary, replicated to replicas):
inline constexpr char kSuperUser[] = "postgres", kSuperPassword[] = "postgres";  // SCRAM
inline constexpr char kScramUser[] = "app", kScramPassword[] = "app_pw";         // SCRAM
inline constexpr char kMd5User[] = "app_md5", kMd5Password[] = "md5_pw";         // md5
// pg_hba: app_md5 -> md5, everyone else over TCP -> scram-sha-256, replication allowed for
// postgres; unix socket -> trust. Settings: wal_level=logical, max_prepared_transactions=20,
// max_wal_senders=10, max_replication_slots=10, hot_standby=on, listen on 127.0.0.1 only.

int FreePort();  // a currently free loopback TCP port (bind to port 0)

// The directory holding initdb/pg_ctl/postgres: $PG_BIN, else /usr/lib/postgresql/15/bin.
std::string PgBinDir();

struct ServerOptions {
  std::vector<std::string> extra_conf;  // lines appended to postgresql.conf
  // Both set: `ssl = on` with this certificate and key (PEM text), written into the data dir
  // with mode 0600 and owned by the server's OS user, as postgres requires of a key.
  std::string ssl_cert_pem, ssl_key_pem;
};

// A throwaway certificate authority for TLS tests, made at run time with the `openssl` command
// line tool (EC P-256 keys: fast) in a temp dir that the destructor removes.
class TestCa {
 public:
  ~TestCa();
  static absl::StatusOr<std::unique_ptr<TestCa>> Create(const std::string& name = "test CA");
  // The CA certificate (PEM file): what a client trusts as root_cert / sslrootcert.
  const std::string& cert_path() const { return cert_path_; }

  struct Issued {
    std::string cert_pem, key_pem;
  };
  // A server certificate signed by this CA: subject CN=`common_name`, subjectAltName `san`
  // (e.g. "IP:127.0.0.1,DNS:localhost"; empty: none).
  absl::StatusOr<Issued> Issue(const std::string& common_name, const std::string& san);

 private:
  TestCa() = default;
  absl::Status Openssl(const std::vector<std::string>& args);
  std::string dir_, cert_path_;
  int issued_ = 0;
};

// One postgres process with its data dir.
class PgServer {
 public:
  ~PgServer();  // stops (fast) and removes the data dir
  // initdb + start a primary, create the roles above and the database `dbname` owned by app.
  static absl::StatusOr<std::unique_ptr<PgServer>> StartPrimary(
      const std::string& dbname = "app", const ServerOptions& options = {});
  // pg_basebackup -R from `primary` and start as a streaming replica; waits until it streams.
  static absl::StatusOr<std::unique_ptr<PgServer>> StartReplica(const PgServer& primary);

  int port() const { return port_; }
  const std::string& host() const { return host_; }  // "127.0.0.1"
  const std::string& data_dir() const { return data_dir_; }
  int pid() const;  // postmaster pid, 0 if not running

  // libpq conninfo: "host=127.0.0.1 port=N dbname=D user=U password=P connect_timeout=5"
  std::string ConnString(const std::string& dbname = "app", const std::string& user = kSuperUser,
                         const std::string& password = kSuperPassword) const;

  absl::Status Stop();     // pg_ctl stop -m fast
  absl::Status Restart();  // start again on the same port and data dir
  absl::Status Kill();     // SIGKILL the postmaster (and it children)
  // SIGSTOP / SIGCONT the postmaster and every child: a hung server that still holds its
  // connections open (the kernel even accepts new ones into the listen backlog).
  absl::Status Freeze();
  absl::Status Thaw();
  absl::Status Promote();  // pg_ctl promote (replicas)

  // Runs SQL through libpq as the superuser; returns the first column of the first row
  // ("" when no rows) or the server's error.
  absl::StatusOr<std::string> Query(const std::string& sql, const std::string& dbname = "app") const;

 private:
  PgServer() = default;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string data_dir_, temp_root_;
  bool running_ = false;
  bool frozen_ = false;
  absl::Status SignalAll(int sig);
};

struct ShardServers {
  std::unique_ptr<PgServer> primary;
  std::vector<std::unique_ptr<PgServer>> replicas;
};

// N shards, each a primary with R replicas, each with the database `dbname`.
class PgCluster {
 public:
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start(int shards, int replicas_per_shard = 0,
                                                          const std::string& dbname = "app");
  std::vector<ShardServers>& shards() { return shards_; }
  ShardServers& shard(int i) { return shards_.at(i); }

  // A shardgate YAML (see ../shared/CONFIG.md) for these servers: listen port `listen_port`,
  // one database `dbname` whose shards are s0..sN-1, users postgres/app/app_md5/admin with their
  // passwords, pool_mode as given. `extra_database_yaml` is appended inside the database map
  // (routers:, tables:, ... indented by 4 spaces), `extra_top_yaml` at the top level.
  std::string ShardgateYaml(int listen_port, const std::string& pool_mode = "transaction",
                            const std::string& extra_database_yaml = "",
                            const std::string& extra_top_yaml = "") const;

 private:
  std::string dbname_;
  std::vector<ShardServers> shards_;
};

// A shardgate daemon started from the build tree ($SHARDGATE_BIN, else the CMake-configured
// path) with a config written to a temp file. Waits until the port accepts connections.
class ShardgateProcess {
 public:
  ~ShardgateProcess();  // SIGTERM, waits (max 10 s), then SIGKILL
  // `extra_args` follow "--config FILE" (e.g. "--log-level", "trace").
  static absl::StatusOr<std::unique_ptr<ShardgateProcess>> Start(
      const std::string& yaml, int port, const std::vector<std::string>& extra_args = {});
  int port() const { return port_; }
  int pid() const { return pid_; }
  const std::string& config_path() const { return config_path_; }
  std::string ConnString(const std::string& dbname = "app", const std::string& user = "app",
                         const std::string& password = "app_pw") const;
  absl::Status Signal(int signo);
  // Waits for exit; returns the exit code (or 128+signal).
  absl::StatusOr<int> Wait(int timeout_ms);
  std::string Log() const;  // what the process wrote to stdout/stderr so far

 private:
  ShardgateProcess() = default;
  int port_ = 0, pid_ = 0;
  std::string config_path_, log_path_, temp_root_;
};

}  // namespace shardgate::testing
