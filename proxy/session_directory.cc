// Directory routers whose entries live in a table (`store:`): a key the router has not cached is
// read from the table, on a pooled connection to the primary of the store's shard, and the
// statement planned again. routing/ does no I/O, so Route fails such a key with a
// DirectoryMiss status that carries what to read (routing/directory_store.h).
#include <chrono>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "protocol/status.h"
#include "proxy/client_session.h"
#include "proxy/io.h"
#include "proxy/worker.h"
#include "routing/directory_store.h"

namespace shardgate::proxy {

namespace {
// How long a lookup waits for a connection of the store's pool (it is the session's own pool
// of that primary: a client holding all of them gets 53300 rather than a hang).
constexpr std::chrono::milliseconds kStorePoolWait{5000};
// Keys read for one statement at most (beyond, its last miss is the answer: 55000).
constexpr int kMaxLookups = 4096;
}  // namespace

bool ClientSession::MissedDirectory(const absl::StatusOr<routing::RoutePlan>& plan) {
  return !plan.ok() && routing::AsDirectoryMiss(plan.status()).has_value();
}

asio::awaitable<absl::StatusOr<routing::RoutePlan>> ClientSession::PlanStatement(
    const routing::Analysis& analysis, const routing::PlanInput& input,
    absl::StatusOr<routing::RoutePlan> plan) {
  // One lookup per key not cached (a long IN list the first time: one round trip per key), and
  // a key once read stays cached (its router's LRU) until it is evicted or a NOTIFY drops it.
  // input.literals may view the worker's analysis cache, which other sessions use while this
  // one waits for a lookup: the statement's literals are copied before the first wait.
  std::vector<routing::Literal> literals;
  std::optional<routing::PlanInput> again;
  for (int lookups = 0; !plan.ok() && lookups < kMaxLookups; ++lookups) {
    std::optional<routing::DirectoryMiss> miss = routing::AsDirectoryMiss(plan.status());
    if (!miss) break;
    if (!again) {
      literals.assign(input.literals.begin(), input.literals.end());
      again = input;
      again->literals = literals;
    }
    if (absl::Status fetched = co_await FetchDirectoryEntry(*miss); !fetched.ok()) {
      co_return fetched;
    }
    plan = planner_->Plan(analysis, *again);
  }
  co_return plan;
}

asio::awaitable<absl::Status> ClientSession::FetchDirectoryEntry(
    const routing::DirectoryMiss& miss) {
  const routing::Router* router = planner_->map().router(miss.router);
  const routing::DirectoryStoreSpec* spec =
      router != nullptr ? routing::DirectorySpecOf(*router) : nullptr;
  if (spec == nullptr) co_return PgStatus("XX000", "directory miss of an unknown router");
  const std::optional<int> shard = topology_->map()->FindShard(spec->shard);
  if (!shard) {
    co_return PgStatus("55000", absl::StrCat("the store of router ", spec->router, " is on shard ",
                                             spec->shard, ", which the map no longer has"));
  }
  auto where = [&](const absl::Status& st) {
    return PgStatus(
        ToPgError(st).sqlstate,
        absl::StrCat("directory router ", spec->router, ": cannot read key ", miss.key.ToString(),
                     " from ", spec->table, " on ", spec->shard, ": ", ToPgError(st).message),
        "The store's table is read on the shard's primary as the client's user.");
  };
  if (absl::Status open = topology_->WriteServerAvailable(*shard); !open.ok()) {
    co_return where(open);
  }
  absl::StatusOr<Pool*> store_pool = PoolFor(topology_->shard(*shard), topology_->Primary(*shard));
  if (!store_pool.ok()) co_return where(store_pool.status());
  Pool& pool = **store_pool;
  auto conn = co_await pool.Acquire(kStorePoolWait);
  if (!conn.ok()) {
    topology_->PrimaryConnectFailed(*shard, conn.status());
    co_return where(conn.status());
  }
  // A NOTIFY handled while the row is read may be about it: then the answer is not cached.
  const uint64_t read_at = routing::DirectoryGeneration(*router);
  // A store that stops answering fails the statement like a failed health check, not never.
  const std::chrono::milliseconds bound = db_->health_check_timeout;
  Deadline deadline(co_await asio::this_coro::executor, bound, [&c = **conn] {
    boost::system::error_code ignored;
    c.socket().cancel(ignored);
  });
  auto row = co_await (*conn)->SimpleQuery(routing::DirectoryLookupSql(*spec, miss.key));
  deadline.Disarm();
  if (deadline.expired()) {
    (*conn)->MarkBroken();
    pool.Release(*std::move(conn));
    co_return where(PgStatus("57014", absl::StrCat("no answer within health_check_timeout (",
                                                   bound.count(), " ms)")));
  }
  pool.Release(*std::move(conn));
  if (!row.ok()) co_return where(row.status());
  std::optional<std::string> name;
  if (!row->empty() && (*row)[0].has_value()) name = *(*row)[0];
  co_return routing::PrimeDirectory(*router, miss.key, name, read_at);
}

}  // namespace shardgate::proxy
