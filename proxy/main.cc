// shardgate: the daemon's entry point. Flags, config check, workers, signals, shutdown order.
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "conf/config.h"
#include "proxy/directory_listener.h"
#include "proxy/health.h"
#include "proxy/metrics.h"
#include "proxy/runtime.h"
#include "proxy/topology.h"
#include "routing/shard_map.h"
#include "proxy/worker.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace sg = shardgate;
namespace asio = boost::asio;

namespace {

// Loads the config and builds every database's shard map, so that router settings are
// validated too: every problem as "FILE:LINE:COLUMN: message" lines.
absl::StatusOr<std::shared_ptr<const sg::conf::Config>> Load(const std::string& path) {
  auto loaded = sg::conf::LoadFile(path);
  if (!loaded.ok()) return loaded.status();
  std::string problems;
  for (const auto& [name, db] : (*loaded)->databases) {
    auto map = sg::routing::ShardMap::Build(db);
    if (!map.ok()) absl::StrAppend(&problems, problems.empty() ? "" : "\n", map.status().message());
  }
  if (!problems.empty()) return absl::InvalidArgumentError(problems);
  return *loaded;
}

// A config with passwords in it that every user of the machine may read: worth a warning at
// every load (the package installs it root:shardgate 0640).
void WarnIfReadableByAll(const std::string& path, const sg::conf::Config& config) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & S_IROTH) == 0) return;
  bool passwords = std::any_of(config.users.begin(), config.users.end(),
                               [](const auto& u) { return !u.password.empty(); });
  for (const auto& [name, db] : config.databases) {
    for (const auto& shard : db.shards) {
      passwords = passwords || !shard.primary.password.empty();
      for (const auto& replica : shard.replicas) passwords = passwords || !replica.password.empty();
    }
  }
  if (!passwords) return;
  spdlog::warn("{} holds passwords and every user of this machine may read it (mode {:o}); "
               "chmod o-r it (the package installs it root:shardgate 0640)",
               path, st.st_mode & 07777);
}

// Load() with the problems on stderr; null on failure.
std::shared_ptr<const sg::conf::Config> LoadAndValidate(const std::string& path) {
  auto loaded = Load(path);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return nullptr;
  }
  WarnIfReadableByAll(path, **loaded);
  return *loaded;
}

// --log-format json: {"ts": "...", "level": "info", "thread": N, "msg": "..."} per line, the
// message escaped as a JSON string.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto ts = std::chrono::duration_cast<std::chrono::microseconds>(
                        msg.time.time_since_epoch())
                        .count();
    std::string line = absl::StrCat(
        "{\"ts\": ", ts / 1000000, ".", absl::StrFormat("%06d", ts % 1000000),
        ", \"level\": \"", spdlog::level::to_string_view(msg.level).data(),
        "\", \"thread\": ", msg.thread_id, ", \"msg\": \"");
    for (unsigned char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      if (c == '"' || c == '\\') {
        line += '\\';
        line += static_cast<char>(c);
      } else if (c < 0x20) {
        line += absl::StrFormat("\\u%04x", c);
      } else {
        line += static_cast<char>(c);
      }
    }
    line += "\"}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLogFormatter>();
  }
};

std::unique_ptr<asio::ssl::context> MakeTls(const sg::conf::TlsConfig& tls, std::string& error) {
  if (!tls.Enabled()) return nullptr;
  try {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain_file(tls.cert);
    ctx->use_private_key_file(tls.key, asio::ssl::context::pem);
    return ctx;
  } catch (const std::exception& e) {
    error = std::string("cannot load TLS certificate/key: ") + e.what();
    return nullptr;
  }
}

// Shutdown order (as ScyllaDB's generic_server): stop accepting, tell idle clients 57P01, let
// busy ones finish their transaction up to the deadline, then close everything.
void Drain(std::vector<std::unique_ptr<sg::proxy::Worker>>& workers, sg::proxy::Runtime& runtime,
           std::chrono::milliseconds deadline) {
  runtime.shutting_down.store(true);
  for (auto& w : workers) w->BeginShutdown();
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    int open = 0;
    for (auto& w : workers) open += w->session_count();
    if (open == 0) break;
    if (std::chrono::steady_clock::now() >= until) {
      spdlog::warn("shutdown deadline reached with {} clients still connected; closing them", open);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers) w->Stop();
  for (auto& w : workers) w->Join();
}

// The live routing state of every sharded database, with a health checker each (on worker 0).
void StartTopologies(sg::proxy::Runtime& runtime, sg::proxy::Worker& worker,
                     const sg::conf::Config& config) {
  std::map<std::string, std::shared_ptr<sg::proxy::Topology>> topologies;
  for (const auto& [name, db] : config.databases) {
    if (!db.Sharded()) continue;
    auto topology = sg::proxy::Topology::Build(db, config.zone);
    if (!topology.ok()) continue;  // validated before; cannot fail here
    topologies[name] = *topology;
  }
  runtime.set_topologies(topologies);
  for (const auto& [name, topology] : topologies) {
    asio::co_spawn(worker.io(), sg::proxy::RunHealthChecks(runtime, name, topology),
                   asio::detached);
    asio::co_spawn(worker.io(), sg::proxy::RunDirectoryListeners(runtime, name, topology),
                   asio::detached);
  }
}

int Run(const std::string& config_path) {
  std::shared_ptr<const sg::conf::Config> config = LoadAndValidate(config_path);
  if (!config) return 1;
  sg::proxy::Runtime runtime(config);
  runtime.rate_limits.Apply(*config);
  std::string tls_error;
  runtime.set_tls(MakeTls(config->tls, tls_error));
  if (!tls_error.empty()) {
    spdlog::critical("{}", tls_error);
    return 1;
  }
  auto server_tls = sg::proxy::MakeServerTls(config->server_tls);
  if (!server_tls.ok()) {
    spdlog::critical("{}", std::string(server_tls.status().message()));
    return 1;
  }
  runtime.set_server_tls(*server_tls);

  if (config->cross_shard.two_phase &&
      std::any_of(config->databases.begin(), config->databases.end(),
                  [](const auto& db) { return db.second.Sharded(); })) {
    // Before serving: finish or roll back what a previous run left between the two phases.
    auto log = sg::proxy::DecisionLog::Open(sg::proxy::DecisionLogPath(*config),
                                            sg::proxy::NodeName(*config));
    if (!log.ok()) {
      spdlog::critical("{}", std::string(log.status().message()));
      return 1;
    }
    absl::Status recovered = sg::proxy::RecoverInDoubt(*config, **log, runtime.server_tls());
    if (!recovered.ok()) spdlog::error("{}", std::string(recovered.message()));
    runtime.set_decision_log(std::move(*log));
  }

  boost::system::error_code ec;
  auto address = asio::ip::make_address(config->listen.host, ec);
  if (ec) {
    spdlog::critical("listen.host \"{}\" is not an IP address", config->listen.host);
    return 1;
  }
  const asio::ip::tcp::endpoint endpoint(address, static_cast<uint16_t>(config->listen.port));
  int n = config->workers > 0 ? config->workers
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::unique_ptr<sg::proxy::Worker>> workers;
  for (int i = 0; i < n; ++i) {
    workers.push_back(std::make_unique<sg::proxy::Worker>(i, runtime));
    if (auto st = workers.back()->Listen(endpoint); !st.ok()) {
      spdlog::critical("{}", std::string(st.message()));
      return 1;
    }
  }
  for (auto& w : workers) runtime.workers.push_back(w.get());
  runtime.config_path = config_path;
  StartTopologies(runtime, *workers.front(), *config);
  // SIGHUP and the admin console's RESHARD SWITCH: a new config replaces the old one only
  // when it is valid; sessions take the new shard maps between transactions.
  std::mutex install_mu;
  runtime.install_config = [&](const std::string& path) -> absl::Status {
    std::lock_guard lock(install_mu);
    auto loaded = Load(path);
    if (!loaded.ok()) return loaded.status();
    // A new context per snapshot: a reload picks up renewed CA or client certificate files.
    auto reloaded_tls = sg::proxy::MakeServerTls((*loaded)->server_tls);
    if (!reloaded_tls.ok()) return reloaded_tls.status();
    runtime.set_server_tls(*reloaded_tls);
    runtime.set_config(*loaded);
    runtime.rate_limits.Apply(**loaded);
    StartTopologies(runtime, *workers.front(), **loaded);
    runtime.reloads.fetch_add(1);
    spdlog::info("configuration installed from {} (map version {})", path,
                 runtime.map_version());
    return absl::OkStatus();
  };
  if (config->admin.http) {
    // admin.http is read at start only (a reload does not move it).
    if (absl::Status st = sg::proxy::StartMetricsServer(runtime, *workers.front(),
                                                        *config->admin.http);
        !st.ok()) {
      spdlog::critical("{}", std::string(st.message()));
      return 1;
    }
  }
  for (auto& w : workers) w->Start();
  sd_notify(0, "READY=1");  // Type=notify units start dependants only now; a no-op elsewhere
  spdlog::info("shardgate listening on {}:{} with {} workers", config->listen.host,
               config->listen.port, n);

  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGTERM, SIGINT, SIGHUP);
  bool stop = false;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& error, int signo) {
        if (error) return;
        if (signo == SIGHUP) {
          sd_notify(0, "RELOADING=1");
          if (absl::Status st = runtime.install_config(config_path); !st.ok()) {
            spdlog::error("reload of {} failed, keeping the old configuration: {}", config_path,
                          std::string(st.message()));
          }
          sd_notify(0, "READY=1");
          signals.async_wait(on_signal);
          return;
        }
        spdlog::info("signal {}: draining clients (deadline {} ms)", signo,
                     runtime.config()->timeouts.shutdown.count());
        sd_notify(0, "STOPPING=1");
        stop = true;
      };
  signals.async_wait(on_signal);
  while (!stop) signals_io.run_one();

  Drain(workers, runtime, runtime.config()->timeouts.shutdown);
  spdlog::info("shardgate stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shardgate: a PostgreSQL sharding proxy"};
  std::string config_path;
  bool check = false;
  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("-c,--config", config_path, "YAML configuration file")->required();
  app.add_flag("--check", check, "validate the configuration and exit (0 ok, 1 errors)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", log_format,
                 "text (for a terminal or journald) | json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  CLI11_PARSE(app, argc, argv);

  // Logs go to stderr, which systemd hands to journald (no files, nothing to rotate).
  spdlog::set_default_logger(spdlog::stderr_color_mt("shardgate"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (log_format == "json") {
    spdlog::set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v");
  }

  try {
    if (check) {
      auto checked = LoadAndValidate(config_path);
      if (!checked) return 1;
      // The PEM files must also parse, not only be readable (conf/ checked that).
      if (auto tls = sg::proxy::MakeServerTls(checked->server_tls); !tls.ok()) {
        std::cerr << config_path << ":1:1: " << tls.status().message() << "\n";
        return 1;
      }
      std::cout << config_path << ": OK\n";
      return 0;
    }
    return Run(config_path);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
