// merge_client: runs one query over libpq in single-row mode, counts the rows and bytes it
// returns, checks that one integer column never decreases, and prints the figures as one JSON
// line. The client side of tools/bench/merge_bench.sh (cross-shard ORDER BY merge throughput).
//
//   merge_client --conninfo "host=127.0.0.1 port=6432 ..." --query "SELECT ..." [--check-column v]
//
// Exit status: 0 ok, 1 the query failed or the column was out of order, 2 bad usage.
#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace shardgate::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string conninfo;
  std::string query;
  // The integer column that must be non-decreasing (the ORDER BY key); empty: no check.
  std::string check_column = "v";
};

struct Figures {
  uint64_t rows = 0;
  uint64_t bytes = 0;            // sum of the text values' lengths, as libpq received them
  double seconds = 0;            // from sending the query to the last result
  double first_row_seconds = 0;  // from sending the query to the first row (0 when no rows)
};

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string ConnError(PGconn* conn) {
  std::string message = PQerrorMessage(conn);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return message;
}

// Parses the command line; a status names what is wrong (the caller prints usage).
absl::StatusOr<Options> ParseArgs(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc)
      return absl::InvalidArgumentError(absl::StrCat("missing value for ", argv[i]));
    const char* value = argv[++i];
    if (arg == "--conninfo") {
      options.conninfo = value;
    } else if (arg == "--query") {
      options.query = value;
    } else if (arg == "--check-column") {
      options.check_column = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", argv[i - 1]));
    }
  }
  if (options.conninfo.empty() || options.query.empty()) {
    return absl::InvalidArgumentError("--conninfo and --query are required");
  }
  return options;
}

// Streams the result of `options.query` row by row (single-row mode keeps this client's memory
// flat however many rows come, so that its own buffering does not hide the proxy's) and checks
// the order of `options.check_column`. Fails on the first out-of-order row: a merge that loses
// order is a bug, not a slower figure.
absl::StatusOr<Figures> Run(const Options& options) {
  Conn conn(PQconnectdb(options.conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("connect: ", ConnError(conn.get())));
  }
  Figures figures;
  const Clock::time_point start = Clock::now();
  if (PQsendQuery(conn.get(), options.query.c_str()) != 1) {
    return absl::UnavailableError(absl::StrCat("send: ", ConnError(conn.get())));
  }
  if (PQsetSingleRowMode(conn.get()) != 1) {
    return absl::InternalError("PQsetSingleRowMode refused (no query in flight?)");
  }
  int check_index = -2;  // -2: not looked up yet; -1: no check
  std::optional<int64_t> previous;
  absl::Status failure;  // the first error; later results are still drained
  while (true) {
    Result result(PQgetResult(conn.get()));
    if (result == nullptr) break;
    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) continue;  // the end marker
    if (status != PGRES_SINGLE_TUPLE) {
      if (failure.ok()) {
        std::string message = PQresultErrorMessage(result.get());
        while (!message.empty() && message.back() == '\n') message.pop_back();
        failure = absl::InternalError(absl::StrCat("query: ", PQresStatus(status), ": ", message));
      }
      continue;
    }
    if (!failure.ok()) continue;
    if (figures.rows == 0) {
      figures.first_row_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    ++figures.rows;
    const int fields = PQnfields(result.get());
    for (int f = 0; f < fields; ++f) figures.bytes += PQgetlength(result.get(), 0, f);
    if (check_index == -2) {
      check_index =
          options.check_column.empty() ? -1 : PQfnumber(result.get(), options.check_column.c_str());
      if (check_index < 0 && !options.check_column.empty()) {
        failure = absl::InvalidArgumentError(
            absl::StrCat("the result has no column \"", options.check_column, "\""));
        continue;
      }
    }
    if (check_index < 0) continue;
    // NULLs sort last in an ascending ORDER BY: once one is seen, only NULLs may follow.
    if (PQgetisnull(result.get(), 0, check_index)) {
      previous = INT64_MAX;
      continue;
    }
    const char* text = PQgetvalue(result.get(), 0, check_index);
    const size_t length = static_cast<size_t>(PQgetlength(result.get(), 0, check_index));
    int64_t value = 0;
    const auto [end, error] = std::from_chars(text, text + length, value);
    if (error != std::errc() || end != text + length) {
      failure = absl::InvalidArgumentError(
          absl::StrCat("row ", figures.rows, ": \"", options.check_column, "\" is not an integer"));
      continue;
    }
    if (previous.has_value() && value < *previous) {
      failure =
          absl::DataLossError(absl::StrCat("row ", figures.rows, ": ", options.check_column, " = ",
                                           value, " after ", *previous, " (not ordered)"));
      continue;
    }
    previous = value;
  }
  figures.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!failure.ok()) return failure;
  return figures;
}

}  // namespace
}  // namespace shardgate::bench

int main(int argc, char** argv) {
  using shardgate::bench::Figures;
  const auto options = shardgate::bench::ParseArgs(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr,
                 "merge_client: %s\nusage: merge_client --conninfo CONNINFO --query SQL "
                 "[--check-column NAME|'']\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  const absl::StatusOr<Figures> figures = shardgate::bench::Run(*options);
  if (!figures.ok()) {
    std::fprintf(stderr, "merge_client: %s\n", figures.status().ToString().c_str());
    return 1;
  }
  const double rate =
      figures->seconds > 0 ? static_cast<double>(figures->rows) / figures->seconds : 0;
  std::printf(
      "{\"rows\": %llu, \"bytes\": %llu, \"seconds\": %.6f, \"first_row_seconds\": %.6f, "
      "\"rows_per_s\": %.0f}\n",
      static_cast<unsigned long long>(figures->rows),
      static_cast<unsigned long long>(figures->bytes), figures->seconds, figures->first_row_seconds,
      rate);
  return 0;
}
