// Fan-out: one client statement run on several shards at once, their answers merged into one.
//
// RunFanOut sends each leg its requests (whole protocol messages; each request is answered by
// exactly one ReadyForQuery), reads every leg's answers in parallel on the worker's thread, feeds
// the rows of forwarded requests to a Merger and streams what it emits to the client. Reading a
// leg pauses while the merger's queue for it is full and while the client is being written to,
// so memory stays bounded by shards x batch however large the result. Legs are owned by the
// caller (a session's distributed transaction, or a statement's own short-lived set).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "absl/status/status.h"
#include "proxy/merge.h"
#include "proxy/server_connection.h"

namespace shardgate::proxy {

class Pool;

struct FanOutRequest {
  std::string messages;  // whole messages ending in Query or Sync
  bool forward = false;  // its rows, tag and errors are the client's; else only errors count
};

// One shard's connection for the duration of a statement or a distributed transaction.
struct FanOutLeg {
  int shard = -1;
  Pool* pool = nullptr;
  std::unique_ptr<ServerConnection> conn;
  std::vector<FanOutRequest> requests;  // filled by the caller before each run
  absl::Status error;                   // set by the run: the first error of this leg
  std::string error_message;            // ... and the ErrorResponse as the server sent it
  bool wrote = false;                   // the caller's note: it ran a write in this transaction
};

// Where the merged answer goes: the session's client buffer and its flush.
struct FanOutSink {
  std::string* out = nullptr;
  std::function<asio::awaitable<bool>()> flush;  // false: the client is gone
  bool row_description = true;  // send the RowDescription (extended: only when described)
};

struct FanOutResult {
  // The error the client gets (the lowest shard's, or a merge/connection error); ok otherwise.
  absl::Status error;
  std::string error_message;    // the whole ErrorResponse for the client (server's own fields)
  bool any_leg_failed = false;  // some request failed (also non-forwarded ones)
  bool client_gone = false;
  std::string command;          // the first CommandComplete's command ("SELECT", "INSERT", ...)
  int64_t rows = 0;             // the summed row count of the forwarded requests' tags
  bool has_rows = false;        // the tag carries a count
  bool empty_query = false;     // EmptyQueryResponse instead of a tag
  bool described = false;       // a RowDescription was seen (rows may follow)
  bool no_data = false;         // a Describe answered NoData (a statement without rows)
};

// The CommandComplete tag one server would have sent: "SELECT 12", "INSERT 0 7", "UPDATE 3".
std::string MergedTag(const FanOutResult& result);

// Runs every leg's requests; `merger` gets the rows of forwarded requests (legs' indexes in
// `legs` are the merger's shard numbers). `timeout` bounds each read (0 = none); a timeout
// cancels the statement on every server and reports 57014.
asio::awaitable<FanOutResult> RunFanOut(std::span<FanOutLeg* const> legs, Merger& merger,
                                        FanOutSink& sink, std::chrono::milliseconds timeout);

// RunFanOut for requests whose answers the client never sees (session setup, BEGIN, PREPARE,
// COMMIT PREPARED, the end of a COPY): rows are concatenated and dropped; errors, tags and the
// legs' transaction states are reported as by RunFanOut.
asio::awaitable<FanOutResult> RunFanOutQuietly(std::span<FanOutLeg* const> legs,
                                               std::chrono::milliseconds timeout);

}  // namespace shardgate::proxy
