#include "tools/shardctl/pg.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "protocol/status.h"

namespace shardgate::tools {

absl::StatusOr<PgConn> PgConn::Connect(const Params& params) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 0);
  PgConn conn(c);
  // Servers' notices ("... does not exist, skipping") are not the operator's business.
  if (c != nullptr) PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    std::string where;
    for (const char* k : {"host", "port", "dbname"}) {
      auto it = params.find(k);
      if (it != params.end()) absl::StrAppend(&where, where.empty() ? "" : " ", k, "=", it->second);
    }
    return PgStatus("08001", absl::StrCat("cannot connect to ", where, ": ",
                                          c ? PQerrorMessage(c) : "out of memory"));
  }
  return conn;
}

absl::Status PgConn::ResultError(PGresult* r, std::string_view sql) const {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const char* hint = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : nullptr;
  std::string message = r ? PQresultErrorMessage(r) : PQerrorMessage(c_.get());
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  std::string head(sql.substr(0, 120));
  return PgStatus(state ? state : "08006",
                  absl::StrCat(Describe(), ": ", message, " (in: ", head,
                               sql.size() > 120 ? "..." : "", ")"),
                  hint ? hint : "");
}

absl::StatusOr<PgResult> PgConn::Exec(std::string_view sql) {
  PGresult* r = PQexec(c_.get(), std::string(sql).c_str());
  const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return PgResult(r);
  absl::Status error = ResultError(r, sql);
  PQclear(r);
  return error;
}

absl::StatusOr<PgResult> PgConn::ExecParams(std::string_view sql,
                                            const std::vector<std::optional<std::string>>& params,
                                            bool binary) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* r = PQexecParams(c_.get(), std::string(sql).c_str(), static_cast<int>(values.size()),
                             nullptr, values.data(), nullptr, nullptr, binary ? 1 : 0);
  const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return PgResult(r);
  absl::Status error = ResultError(r, sql);
  PQclear(r);
  return error;
}

absl::StatusOr<std::string> PgConn::Value(std::string_view sql) {
  ASSIGN_OR_RETURN(PgResult r, Exec(sql));
  if (r.rows() == 0 || r.cols() == 0 || r.null(0, 0)) return std::string();
  return r.get(0, 0);
}

std::string PgConn::Literal(std::string_view s) const {
  char* q = PQescapeLiteral(c_.get(), s.data(), s.size());
  std::string out = q ? q : "NULL";
  PQfreemem(q);
  return out;
}

std::string PgConn::Ident(std::string_view s) const {
  char* q = PQescapeIdentifier(c_.get(), s.data(), s.size());
  std::string out = q ? q : "\"\"";
  PQfreemem(q);
  return out;
}

std::string PgConn::Describe() const {
  return absl::StrCat(PQhost(c_.get()) ? PQhost(c_.get()) : "?", ":",
                      PQport(c_.get()) ? PQport(c_.get()) : "?", "/",
                      PQdb(c_.get()) ? PQdb(c_.get()) : "?");
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

// Ends the COPY FROM STDIN on `conn` (failed: with an error, so nothing of it stays).
std::string EndCopyIn(PgConn& conn, bool failed) {
  std::string failure;
  PQputCopyEnd(conn.get(), failed ? "source failed" : nullptr);
  while (PGresult* done = PQgetResult(conn.get())) {
    if (PQresultStatus(done) != PGRES_COMMAND_OK && failure.empty() && !failed) {
      failure = absl::StrCat(conn.Describe(), ": ", PQresultErrorMessage(done));
    }
    PQclear(done);
  }
  return failure;
}

}  // namespace

absl::StatusOr<std::map<std::string, int64_t>> CopyRouted(
    PgConn& from, std::string_view copy_out, const std::map<std::string, PgConn*>& to,
    std::string_view copy_in, const std::function<void(int64_t)>& progress) {
  std::map<std::string, int64_t> rows;
  std::vector<PgConn*> started;
  std::string failure;
  for (const auto& [name, conn] : to) {
    PGresult* r = PQexec(conn->get(), std::string(copy_in).c_str());
    const bool ok = r != nullptr && PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!ok) {
      failure = absl::StrCat(conn->Describe(), ": COPY FROM STDIN did not start: ",
                             PQerrorMessage(conn->get()));
      break;
    }
    started.push_back(conn);
    rows[name] = 0;
  }
  if (failure.empty()) {
    PGresult* r = PQexec(from.get(), std::string(copy_out).c_str());
    if (r == nullptr || PQresultStatus(r) != PGRES_COPY_OUT) {
      failure = absl::StrCat(from.Describe(), ": COPY TO STDOUT failed: ",
                             PQerrorMessage(from.get()));
    }
    PQclear(r);
  }
  int64_t total = 0;
  while (failure.empty()) {
    char* buf = nullptr;
    const int n = PQgetCopyData(from.get(), &buf, 0);
    if (n == -1) break;  // done
    if (n < 0) {
      failure = absl::StrCat(from.Describe(), ": ", PQerrorMessage(from.get()));
      break;
    }
    std::string_view line(buf, static_cast<size_t>(n));
    const size_t tab = line.find('\t');
    const std::string_view owner = line.substr(0, tab);
    const std::string_view row = tab == std::string_view::npos ? "" : line.substr(tab + 1);
    for (const auto& [name, conn] : to) {
      if (owner != "*" && owner != name) continue;
      if (PQputCopyData(conn->get(), row.data(), static_cast<int>(row.size())) != 1) {
        failure = absl::StrCat(conn->Describe(), ": ", PQerrorMessage(conn->get()));
        break;
      }
      ++rows[name];
    }
    PQfreemem(buf);
    if (progress && ++total % 1000 == 0) progress(total);
  }
  while (PGresult* done = PQgetResult(from.get())) {
    if (PQresultStatus(done) != PGRES_COMMAND_OK && PQresultStatus(done) != PGRES_COPY_OUT &&
        failure.empty()) {
      failure = absl::StrCat(from.Describe(), ": ", PQresultErrorMessage(done));
    }
    PQclear(done);
  }
  for (PgConn* conn : started) {
    std::string f = EndCopyIn(*conn, !failure.empty());
    if (failure.empty()) failure = f;
  }
  if (!failure.empty()) return PgStatus("08006", failure);
  return rows;
}

PgConn::Params PrimaryParams(const conf::Config& login, const conf::ShardConfig& shard,
                             const std::string& database) {
  const conf::ReshardConfig& rc = login.reshard;
  PgConn::Params p = {{"host", shard.primary.host},
                      {"port", std::to_string(shard.primary.port)},
                      {"dbname", shard.primary.dbname.empty() ? database : shard.primary.dbname},
                      {"user", rc.user},
                      {"application_name", "shardctl"},
                      {"connect_timeout", "10"}};
  std::string password = rc.password;
  if (password.empty()) {
    if (const conf::UserConfig* u = login.FindUser(rc.user)) {
      const bool verifier = u->password.rfind("md5", 0) == 0 && u->password.size() == 35;
      if (!verifier && u->password.rfind("SCRAM-SHA-256$", 0) != 0) password = u->password;
    }
  }
  if (!password.empty()) p["password"] = password;
  // The proxies' server_tls applies to shardctl's own connections too (libpq's sslmode has the
  // same meaning: verify-full matches the endpoint's host against the certificate).
  const conf::ServerTlsConfig& tls = login.server_tls;
  if (tls.Enabled()) {
    p["sslmode"] = std::string(conf::SslModeName(tls.sslmode));
    if (!tls.root_cert.empty()) p["sslrootcert"] = tls.root_cert;
    if (!tls.cert.empty()) p["sslcert"] = tls.cert;
    if (!tls.key.empty()) p["sslkey"] = tls.key;
  }
  return p;
}

absl::StatusOr<PgConn::Params> ShardPrimaryParams(const conf::Config& config,
                                                  const conf::DatabaseConfig& db,
                                                  const std::string& shard) {
  for (const conf::ShardConfig& c : db.shards) {
    if (c.name == shard) return PrimaryParams(config, c, db.name);
  }
  return PgStatus("42704", absl::StrCat("no shard '", shard, "'"));
}

std::string TableName::Qualified(std::string_view object) const {
  return schema.empty() ? QuoteIdent(object) : absl::StrCat(QuoteIdent(schema), ".", QuoteIdent(object));
}

TableName SplitTable(const std::string& table) {
  TableName t;
  const std::string lower = absl::AsciiStrToLower(table);
  if (size_t dot = lower.find('.'); dot != std::string::npos) {
    t.schema = lower.substr(0, dot);
    t.name = lower.substr(dot + 1);
  } else {
    t.name = lower;
  }
  return t;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view text, int mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) return PgStatus("58030", absl::StrCat("cannot write ", tmp, ": ", strerror(errno)));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return PgStatus("58030", absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace shardgate::tools
