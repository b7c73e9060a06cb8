// Errors that carry a PostgreSQL SQLSTATE, and the RETURN_IF_ERROR / ASSIGN_OR_RETURN macros.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardgate {

// A PostgreSQL error as the proxy sends it to a client (ErrorResponse fields S, V, C, M, D, H).
struct PgError {
  std::string severity = "ERROR";  // ERROR | FATAL | PANIC | WARNING | NOTICE ...
  std::string sqlstate;            // five characters, e.g. "08P01"
  std::string message;
  std::string detail;  // empty = not sent
  std::string hint;    // empty = not sent
};

// Builds an absl::Status that carries `sqlstate` (and optional hint/detail) as payloads, so that
// errors travel through our code as values and still reach the client in PostgreSQL's own form.
absl::Status PgStatus(std::string_view sqlstate, std::string_view message,
                      std::string_view hint = {}, std::string_view detail = {});

// The SQLSTATE carried by `status`; a status made without one maps to a generic code
// (kInvalidArgument -> 22023, kUnavailable -> 08006, kResourceExhausted -> 53300,
// kUnimplemented -> 0A000, kDeadlineExceeded -> 57014, otherwise XX000).
std::string SqlState(const absl::Status& status);

// The hint/detail payloads carried by `status`, empty when absent.
std::string Hint(const absl::Status& status);
std::string Detail(const absl::Status& status);

// The full PgError for `status` (severity ERROR unless `severity` given).
PgError ToPgError(const absl::Status& status, std::string_view severity = "ERROR");

// Debian's abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// which does not convert to or from std::string_view. These convert at the boundary (for
// absl::StrCat, absl::Status messages, payloads...) without copying. Added by h1.
inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view StdView(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace shardgate

#define SHARDGATE_CONCAT_INNER_(a, b) a##b
#define SHARDGATE_CONCAT_(a, b) SHARDGATE_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                     \
  do {                                            \
    if (auto _st = (expr); !_st.ok()) return _st; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(*tmp)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(SHARDGATE_CONCAT_(_statusor_, __LINE__), lhs, expr)

// The same for C++20 coroutines (asio::awaitable), where `return` is not allowed.
#define CO_RETURN_IF_ERROR(expr)                     \
  do {                                               \
    if (auto _st = (expr); !_st.ok()) co_return _st; \
  } while (0)

#define CO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)   \
  auto tmp = (expr);                                \
  if (!tmp.ok()) co_return std::move(tmp).status(); \
  lhs = std::move(*tmp)

#define CO_ASSIGN_OR_RETURN(lhs, expr) \
  CO_ASSIGN_OR_RETURN_IMPL_(SHARDGATE_CONCAT_(_co_statusor_, __LINE__), lhs, expr)
