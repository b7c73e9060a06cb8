// The LISTEN side of `store:` directories: one connection per store shard (as the health
// checker logs in), woken by the server's notifications or once a second.
#include "proxy/directory_listener.h"

#include <chrono>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/health.h"
#include "proxy/io.h"
#include "proxy/runtime.h"
#include "proxy/server_connection.h"
#include "routing/directory_store.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {
namespace {

constexpr char kChannel[] = "shardgate_directory";

// Drops what `payload` names among the store routers of `shard`: "<router>" or "<router> <key>".
void Invalidate(const routing::ShardMap& map, std::string_view payload) {
  const size_t space = payload.find(' ');
  const std::string_view name = payload.substr(0, space);
  const routing::Router* router = map.router(name);
  if (router == nullptr) return;
  if (space != std::string_view::npos) {
    auto key = routing::ParseKeyText(payload.substr(space + 1), router->key_type());
    if (key.ok()) {
      routing::InvalidateDirectory(*router, *key);
      return;
    }
  }
  routing::InvalidateDirectory(*router);
}

void InvalidateAll(const routing::ShardMap& map, const std::string& shard) {
  for (const auto& router : map.routers()) {
    const routing::DirectoryStoreSpec* spec = routing::DirectorySpecOf(*router);
    if (spec != nullptr && spec->shard == shard) routing::InvalidateDirectory(*router);
  }
}

asio::awaitable<void> Listen(Runtime& runtime, std::string database,
                             std::shared_ptr<Topology> topology, std::string shard_name) {
  auto executor = co_await asio::this_coro::executor;
  auto live = [&] {
    return !runtime.shutting_down.load() && runtime.topology(database) == topology;
  };
  const std::shared_ptr<const routing::ShardMap> map = topology->map();
  const std::optional<int> shard = map->FindShard(shard_name);
  if (!shard) co_return;
  const ServerConnection::NotifyFn notify = [&](std::string_view channel,
                                                std::string_view payload) {
    if (channel == kChannel) Invalidate(*map, payload);
  };
  asio::steady_timer pause(executor);
  bool warned = false, first = true;
  while (live()) {
    auto config = runtime.config();
    BackendTarget target = HealthTarget(*config, database, shard_name, topology->Primary(*shard));
    auto conn =
        co_await ServerConnection::Connect(target, config->timeouts.connect, runtime.server_tls());
    // A server that stops answering (stopped, hung) must not hold the listener: each statement
    // gets health_check_timeout, then the connection is dropped and opened again.
    auto bounded = [&](std::string_view sql) -> asio::awaitable<absl::Status> {
      Deadline deadline(executor, topology->db().health_check_timeout, [&c = **conn] {
        boost::system::error_code ignored;
        c.socket().cancel(ignored);
      });
      co_return (co_await (*conn)->SimpleQuery(sql, notify)).status();
    };
    absl::Status st = conn.ok() ? absl::OkStatus() : conn.status();
    if (st.ok()) st = co_await bounded(absl::StrCat("LISTEN ", kChannel));
    if (st.ok()) {
      if (first) {
        spdlog::info("directory listener on {} ({}) listening", shard_name, database);
      } else if (warned) {
        spdlog::info("directory listener on {} ({}) connected again", shard_name, database);
      }
      warned = false;
      first = false;
      InvalidateAll(*map, shard_name);
      // Woken when the server sends (a notification), or after a second; the empty query then
      // reads whatever came (under TLS, decrypted data may wait without the socket being readable).
      while (live()) {
        Deadline deadline(executor, std::chrono::milliseconds(1000), [&c = **conn] {
          boost::system::error_code ignored;
          c.socket().cancel(ignored);
        });
        auto [ec] = co_await (*conn)->socket().async_wait(asio::ip::tcp::socket::wait_read, kTuple);
        deadline.Disarm();
        if (ec && !deadline.expired()) break;
        st = co_await bounded("");
        if (!st.ok()) break;
      }
    }
    if (conn.ok()) (*conn)->Close();
    if (!live()) break;
    if (!warned) {
      spdlog::warn("directory listener on {} ({}): {}; cached directory keys stay until it is back",
                   shard_name, database, st.ok() ? "connection lost" : std::string(st.message()));
      warned = true;
    }
    pause.expires_after(std::chrono::seconds(1));
    co_await pause.async_wait(kTuple);
  }
}

}  // namespace

asio::awaitable<void> RunDirectoryListeners(Runtime& runtime, std::string database,
                                            std::shared_ptr<Topology> topology) {
  std::set<std::string> shards;
  for (const auto& router : topology->map()->routers()) {
    if (const routing::DirectoryStoreSpec* spec = routing::DirectorySpecOf(*router)) {
      shards.insert(spec->shard);
    }
  }
  auto executor = co_await asio::this_coro::executor;
  for (const std::string& shard : shards) {
    asio::co_spawn(executor, Listen(runtime, database, topology, shard), asio::detached);
  }
}

}  // namespace shardgate::proxy
