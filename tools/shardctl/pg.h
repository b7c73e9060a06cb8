// A small libpq client for shardctl: connections to shard servers (normal and logical
// replication), queries with errors as SQLSTATE-carrying statuses, COPY between servers.
//
// API: PgConn::Connect(endpoint) / ConnectTo(params); Exec, ExecParams (text or binary
// results), Value (one value), Literal/Ident (quoting by the server's rules), CopyBetween.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "conf/config.h"

namespace shardgate::tools {

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  int cols() const { return PQnfields(r_.get()); }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string get(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col),
                       static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  std::string_view view(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col))};
  }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

class PgConn {
 public:
  // libpq keywords (host, port, dbname, user, password, replication...).
  using Params = std::map<std::string, std::string>;
  static absl::StatusOr<PgConn> Connect(const Params& params);

  absl::StatusOr<PgResult> Exec(std::string_view sql);
  // $1.. as text (nullopt = NULL); `binary`: results in binary format.
  absl::StatusOr<PgResult> ExecParams(std::string_view sql,
                                      const std::vector<std::optional<std::string>>& params,
                                      bool binary = false);
  // The first column of the first row ("" when none or NULL).
  absl::StatusOr<std::string> Value(std::string_view sql);
  std::string Literal(std::string_view s) const;
  std::string Ident(std::string_view s) const;
  // "host:port/dbname" for messages.
  std::string Describe() const;
  PGconn* get() const { return c_.get(); }

 private:
  explicit PgConn(PGconn* c) : c_(c, &PQfinish) {}
  absl::Status ResultError(PGresult* r, std::string_view sql) const;

  std::unique_ptr<PGconn, void (*)(PGconn*)> c_;
};

// `"name"` with inner quotes doubled: an identifier as PostgreSQL reads it back, without a
// connection (PgConn::Ident asks libpq).
std::string QuoteIdent(std::string_view name);

// Runs `copy_out` (COPY ... TO STDOUT, text format) on `from`, whose first column names where
// each row goes: a key of `to` (the row without that column is written to its COPY ...
// FROM STDIN, `copy_in`, started here), or "*" for all of them. Returns the rows each got.
// The targets are left inside whatever transaction the caller opened.
absl::StatusOr<std::map<std::string, int64_t>> CopyRouted(
    PgConn& from, std::string_view copy_out, const std::map<std::string, PgConn*>& to,
    std::string_view copy_in, const std::function<void(int64_t)>& progress = {});

// libpq parameters of `shard`'s primary (dbname defaulting to `database`), logged in as
// `login`'s `reshard:` user (its password, else its users: entry's plain password), with
// `login`'s server_tls as sslmode/sslrootcert/...
PgConn::Params PrimaryParams(const conf::Config& login, const conf::ShardConfig& shard,
                             const std::string& database);
// The same for the shard named `shard` of `db` (42704 when it has none).
absl::StatusOr<PgConn::Params> ShardPrimaryParams(const conf::Config& config,
                                                  const conf::DatabaseConfig& db,
                                                  const std::string& shard);

// A table name from the command line or the config: lower-case, schema empty = the default.
struct TableName {
  std::string schema, name;
  // `object` quoted, in this table's schema when it has one.
  std::string Qualified(std::string_view object) const;
};
TableName SplitTable(const std::string& table);

// Writes `text` to `path` through `path`.tmp, fsync and rename, so that a reader sees the old
// file or the new one whole. `mode` is the new file's (before the umask).
absl::Status WriteFileAtomically(const std::string& path, std::string_view text, int mode);

}  // namespace shardgate::tools
