// Prometheus metrics and a health check over HTTP (`admin.http`): GET /metrics answers the
// text exposition format (serialized by prometheus-cpp), GET /healthz 200 "ok" while serving and
// 503 "draining" once shutting down (for load balancers).
//
// The numbers are read at scrape time from every worker (on its own thread), so the hot path
// only bumps plain per-worker counters (Worker::stats, Worker::errors).
#pragma once

#include <string>

#include <boost/asio/awaitable.hpp>

#include "absl/status/status.h"
#include "conf/config.h"
#include "proxy/runtime.h"

namespace shardgate::proxy {

// Listens on `address` and serves until the worker's io_context stops. Errors: cannot bind.
absl::Status StartMetricsServer(Runtime& runtime, class Worker& on,
                                const conf::ListenConfig& address);

// The exposition text of everything the proxy measures (also what /metrics answers).
boost::asio::awaitable<std::string> RenderMetrics(Runtime& runtime);

}  // namespace shardgate::proxy
