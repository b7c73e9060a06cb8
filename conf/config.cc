// Node tree -> Config: top-level sections, users, and cross-section validation; LoadFile and
// LoadString. Databases (shards, routers, tables) are read in database.cc.
#include "conf/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "conf/reader.h"

namespace shardgate::conf {

const ShardConfig* DatabaseConfig::FindShard(std::string_view name) const {
  for (const ShardConfig& shard : shards) {
    if (shard.name == name) return &shard;
  }
  return nullptr;
}

const UserConfig* Config::FindUser(std::string_view name) const {
  for (const UserConfig& user : users) {
    if (user.name == name) return &user;
  }
  return nullptr;
}

const DatabaseConfig* Config::FindDatabase(std::string_view name) const {
  for (const auto& [db_name, db] : databases) {
    if (db_name == name) return &db;
  }
  return nullptr;
}

std::string_view SslModeName(SslMode mode) {
  switch (mode) {
    case SslMode::kDisable: return "disable";
    case SslMode::kPrefer: return "prefer";
    case SslMode::kRequire: return "require";
    case SslMode::kVerifyCa: return "verify-ca";
    case SslMode::kVerifyFull: return "verify-full";
  }
  return "disable";
}

bool Config::IsAdmin(std::string_view user) const {
  return std::find(admin.users.begin(), admin.users.end(), user) != admin.users.end();
}

namespace {

using internal::MapReader;
using internal::Problems;

// Config files hold no bulk data (a large directory belongs in a store table); the cap keeps a
// wrong path (a log, a device) from being read into memory.
constexpr std::streamsize kMaxFileSize = 64 << 20;
constexpr std::string_view kAdminDatabase = "shardgate";

void ReadListen(const Node& node, const char* what, ListenConfig* out, Problems& problems) {
  MapReader r(node, problems, what);
  if (r.String("host", &out->host) && out->host.empty()) {
    problems.Add(r.Get("host")->mark, "'host' must not be empty");
  }
  r.Int("port", &out->port, 1, 65535);
}

bool IsMd5Hash(std::string_view password) {
  if (password.size() != 35 || !absl::StartsWith(internal::Av(password), "md5")) return false;
  return std::all_of(password.begin() + 3, password.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

namespace internal {

std::optional<RateLimitConfig> ReadRateLimit(const Node& node, Problems& problems,
                                             std::string_view what) {
  RateLimitConfig limit;
  limit.mark = node.mark;
  const size_t before = problems.size();
  MapReader r(node, problems, what);
  constexpr int64_t kMax = 1'000'000'000;  // a token per nanosecond at most
  r.Int("queries_per_second", &limit.queries_per_second, 1, kMax, /*required=*/true);
  if (!r.Int("burst", &limit.burst, 1, kMax)) limit.burst = limit.queries_per_second;
  r.Enum("mode", &limit.mode,
         {{"error", RateLimitConfig::Mode::kError}, {"queue", RateLimitConfig::Mode::kQueue}});
  if (r.Dur("max_wait", &limit.max_wait) && limit.max_wait.count() == 0) {
    problems.Add(r.Get("max_wait")->mark, "'max_wait' must be greater than 0");
  }
  r.Finish();
  if (!r.IsMap() || problems.size() != before) return std::nullopt;
  return limit;
}

}  // namespace internal

namespace {

UserConfig ReadUser(const Node& node, Problems& problems) {
  UserConfig user;
  user.mark = node.mark;
  MapReader r(node, problems, "user");
  r.String("name", &user.name, /*required=*/true);
  r.String("password", &user.password);
  r.Enum("pool_mode", &user.pool_mode,
         {{"transaction", PoolMode::kTransaction}, {"session", PoolMode::kSession}});
  bool auth_given = r.Enum("auth", &user.auth,
                           {{"scram-sha-256", AuthMethod::kScram},
                            {"md5", AuthMethod::kMd5},
                            {"trust", AuthMethod::kTrust}});
  r.Int("max_connections", &user.max_connections, 0);
  if (const Node* limit = r.Get("rate_limit"); limit != nullptr) {
    user.rate_limit = internal::ReadRateLimit(*limit, problems, "user rate_limit");
  }
  if (!r.IsMap() || user.name.empty()) return user;

  // The proxy verifies clients itself, so it needs a secret it can check the chosen method with.
  const Mark& at = auth_given ? r.Get("auth")->mark : user.mark;
  if (user.password.empty() && user.auth != AuthMethod::kTrust) {
    problems.Add(user.mark,
                 absl::StrCat("user '", user.name, "' needs a password (or auth: trust)"));
  } else if (user.auth == AuthMethod::kMd5 && absl::StartsWith(user.password, "SCRAM-SHA-256$")) {
    problems.Add(at, absl::StrCat("user '", user.name,
                                  "': auth md5 cannot use a SCRAM verifier as password"));
  } else if (user.auth == AuthMethod::kScram && IsMd5Hash(user.password)) {
    problems.Add(at, absl::StrCat("user '", user.name,
                                  "': auth scram-sha-256 cannot use an md5 hash as password"));
  }
  return user;
}

void ReadUsers(const Node& list, Config& config, Problems& problems) {
  for (const Node& item : list.list) {
    UserConfig user = ReadUser(item, problems);
    if (user.name.empty()) continue;
    if (const UserConfig* first = config.FindUser(user.name); first != nullptr) {
      problems.Add(user.mark, absl::StrCat("duplicate user '", user.name, "' (first at line ",
                                           first->mark.line, ")"));
      continue;
    }
    config.users.push_back(std::move(user));
  }
}

void ReadAdmin(const Node& node, Config& config, Problems& problems) {
  MapReader r(node, problems, "admin");
  if (const Node* users = r.List("users"); users != nullptr) {
    for (const Node& item : users->list) {
      if (item.kind != Node::Kind::kScalar || item.scalar.empty()) {
        problems.Add(item.mark, "admin 'users': expected a user name");
        continue;
      }
      if (config.FindUser(item.scalar) == nullptr) {
        problems.Add(item.mark,
                     absl::StrCat("admin user '", item.scalar, "' is not defined in users:"));
        continue;
      }
      config.admin.users.push_back(item.scalar);
    }
  }
  if (const Node* http = r.Map("http"); http != nullptr) {
    ListenConfig listen;
    listen.port = 9930;
    ReadListen(*http, "admin http", &listen, problems);
    if (listen.host == config.listen.host && listen.port == config.listen.port) {
      problems.Add(http->mark, absl::StrCat("admin http uses the same address as listen (",
                                            listen.host, ":", listen.port, ")"));
    }
    config.admin.http = listen;
  }
}

void ReadTls(const Node& node, Config& config, Problems& problems) {
  MapReader r(node, problems, "tls");
  r.String("cert", &config.tls.cert);
  r.String("key", &config.tls.key);
  if (!config.tls.cert.empty() && config.tls.key.empty()) {
    problems.Add(node.mark, "tls: 'cert' is set but 'key' is missing");
  } else if (config.tls.cert.empty() && !config.tls.key.empty()) {
    problems.Add(node.mark, "tls: 'key' is set but 'cert' is missing");
  }
}

// A PEM file named in the config must be readable now: finding out at the first server
// connection would turn a typo into an outage.
void CheckReadable(MapReader& r, std::string_view key, const std::string& path,
                   Problems& problems) {
  if (path.empty()) return;
  std::ifstream in(path, std::ios::binary);
  const int error = errno;
  std::error_code ec;
  std::string why;
  if (std::filesystem::is_directory(path, ec)) {
    why = "is a directory";
  } else if (!in) {
    why = std::strerror(error);
  } else {
    return;
  }
  problems.Add(r.Get(key)->mark, absl::StrCat("server_tls: cannot read '", internal::Av(key),
                                              "' file ", path, ": ", why));
}

void ReadServerTls(const Node& node, Config& config, Problems& problems) {
  ServerTlsConfig& t = config.server_tls;
  MapReader r(node, problems, "server_tls");
  r.Enum("sslmode", &t.sslmode,
         {{"disable", SslMode::kDisable},
          {"prefer", SslMode::kPrefer},
          {"require", SslMode::kRequire},
          {"verify-ca", SslMode::kVerifyCa},
          {"verify-full", SslMode::kVerifyFull}});
  r.String("root_cert", &t.root_cert);
  r.String("cert", &t.cert);
  r.String("key", &t.key);
  if (!r.IsMap()) return;
  if (t.Verifies() && t.root_cert.empty()) {
    problems.Add(node.mark,
                 absl::StrCat("server_tls: sslmode ", internal::Av(SslModeName(t.sslmode)),
                              " needs 'root_cert' (the CA that signed the servers' "
                              "certificates)"));
  }
  if (!t.cert.empty() && t.key.empty()) {
    problems.Add(node.mark, "server_tls: 'cert' is set but 'key' is missing");
  } else if (t.cert.empty() && !t.key.empty()) {
    problems.Add(node.mark, "server_tls: 'key' is set but 'cert' is missing");
  }
  CheckReadable(r, "root_cert", t.root_cert, problems);
  CheckReadable(r, "cert", t.cert, problems);
  CheckReadable(r, "key", t.key, problems);
}

void ReadTimeouts(const Node& node, Timeouts& t, Problems& problems) {
  MapReader r(node, problems, "timeouts");
  r.Dur("connect", &t.connect);
  r.Dur("query", &t.query);
  r.Dur("client_idle", &t.client_idle);
  r.Dur("idle_in_transaction", &t.idle_in_transaction);
  r.Dur("server_idle", &t.server_idle);
  r.Dur("client_login", &t.client_login);
  r.Dur("client_message", &t.client_message);
  r.Dur("shutdown", &t.shutdown);
  // A zero connect or login timeout would fail every attempt instantly, not disable the limit.
  for (std::string_view key : {"connect", "client_login"}) {
    const Node* value = r.Get(key);
    Duration d{0};
    if (value != nullptr && value->kind == Node::Kind::kScalar &&
        internal::ParseDuration(value->scalar, &d) && d.count() == 0) {
      problems.Add(value->mark,
                   absl::StrCat("timeouts '", internal::Av(key), "' must be greater than 0"));
    }
  }
}

void ReadLimits(const Node& node, Limits& limits, Problems& problems) {
  MapReader r(node, problems, "limits");
  r.Int("max_client_conn", &limits.max_client_conn, 1);
  int64_t size = 0;
  // Below a few KiB a startup packet no longer fits; PostgreSQL itself caps messages at 1 GiB.
  if (r.Int("max_message_size", &size, 1024, int64_t{1} << 30)) {
    limits.max_message_size = static_cast<uint32_t>(size);
  }
}

void ReadCrossShard(const Node& node, CrossShardConfig& c, Problems& problems) {
  MapReader r(node, problems, "cross_shard");
  r.Bool("two_phase", &c.two_phase);
  r.String("decision_log", &c.decision_log);
  r.String("node", &c.node);
  int64_t memory = 0;
  if (r.Int("merge_memory", &memory, 1 << 20, int64_t{1} << 40)) {
    c.merge_memory = static_cast<uint64_t>(memory);
  }
  for (char ch : c.node) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
      problems.Add(node.mark, "cross_shard: 'node' may hold only letters, digits and '_'");
      break;
    }
  }
}

void ReadReshard(const Node& node, ReshardConfig& c, Problems& problems) {
  MapReader r(node, problems, "reshard");
  if (const Node* proxies = r.List("proxies"); proxies != nullptr) {
    for (const Node& p : proxies->list) {
      ListenConfig proxy;
      ReadListen(p, "reshard proxy", &proxy, problems);
      c.proxies.push_back(proxy);
    }
  }
  if (r.String("user", &c.user) && c.user.empty()) {
    problems.Add(r.Get("user")->mark, "reshard: 'user' must not be empty");
  }
  r.String("password", &c.password);
  r.String("state", &c.state);
  r.Dur("pause_max", &c.pause_max);
}

void ReadDatabases(const Node& node, Config& config, Problems& problems) {
  for (const auto& [name, value] : node.map) {
    auto mark_it = node.key_marks.find(name);
    const Mark& mark = mark_it != node.key_marks.end() ? mark_it->second : value.mark;
    if (name.empty()) {
      problems.Add(mark, "a database name must not be empty");
      continue;
    }
    if (name == kAdminDatabase) {
      problems.Add(mark, absl::StrCat("database name '", internal::Av(kAdminDatabase),
                                      "' is reserved for the admin console"));
      continue;
    }
    config.databases.emplace(name, internal::ReadDatabase(name, mark, value, problems));
  }
}

absl::StatusOr<std::shared_ptr<const Config>> Build(const Node& root, const std::string& name) {
  auto config = std::make_shared<Config>();
  config->path = name;
  Problems problems;
  MapReader r(root, problems, "the configuration");
  if (const Node* listen = r.Map("listen"); listen != nullptr) {
    ReadListen(*listen, "listen", &config->listen, problems);
  }
  r.Int("workers", &config->workers, 0, 1024);
  r.String("zone", &config->zone);
  r.Int("node_id", &config->node_id, 0, 1023);
  // Users first: admin users are checked against them.
  if (const Node* users = r.List("users"); users != nullptr) {
    ReadUsers(*users, *config, problems);
  }
  if (const Node* admin = r.Map("admin"); admin != nullptr) ReadAdmin(*admin, *config, problems);
  if (const Node* tls = r.Map("tls"); tls != nullptr) ReadTls(*tls, *config, problems);
  if (const Node* tls = r.Map("server_tls"); tls != nullptr) {
    ReadServerTls(*tls, *config, problems);
  }
  if (const Node* dbs = r.Map("databases"); dbs != nullptr) {
    ReadDatabases(*dbs, *config, problems);
  }
  if (const Node* t = r.Map("timeouts"); t != nullptr) {
    ReadTimeouts(*t, config->timeouts, problems);
  }
  if (const Node* limits = r.Map("limits"); limits != nullptr) {
    ReadLimits(*limits, config->limits, problems);
  }
  if (const Node* c = r.Map("cross_shard"); c != nullptr) {
    ReadCrossShard(*c, config->cross_shard, problems);
  }
  if (const Node* c = r.Map("reshard"); c != nullptr) ReadReshard(*c, config->reshard, problems);
  r.Finish();
  if (r.IsMap() || root.IsNull()) {
    // Without either the proxy could not let anyone in; an empty section is the same mistake.
    const Node* users = r.Get("users");
    const Node* dbs = r.Get("databases");
    if (users == nullptr || (users->kind == Node::Kind::kList && users->list.empty())) {
      problems.Add(users != nullptr ? users->mark : root.mark, "no users configured");
    }
    if (dbs == nullptr || (dbs->kind == Node::Kind::kMap && dbs->map.empty())) {
      problems.Add(dbs != nullptr ? dbs->mark : root.mark, "no databases configured");
    }
  }
  if (!problems.empty()) return problems.ToStatus();
  return std::shared_ptr<const Config>(std::move(config));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Config>> LoadString(std::string_view yaml,
                                                         const std::string& name) {
  absl::StatusOr<Node> root = ParseYaml(yaml, name);
  if (!root.ok()) return root.status();
  // Building allocates; out of memory (a huge but valid file) must still be a value, not a throw.
  try {
    return Build(*root, name);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat(name, ": cannot load: ", e.what()));
  }
}

absl::StatusOr<std::shared_ptr<const Config>> LoadFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return ErrorAt(Mark{path, 1, 1}, "cannot read: is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return ErrorAt(Mark{path, 1, 1}, absl::StrCat("cannot open: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[64 * 1024];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (static_cast<std::streamsize>(text.size()) > kMaxFileSize) {
      return ErrorAt(Mark{path, 1, 1}, "file too large for a configuration (over 64 MiB)");
    }
  }
  if (in.bad()) {
    return ErrorAt(Mark{path, 1, 1}, absl::StrCat("cannot read: ", std::strerror(errno)));
  }
  return LoadString(text, path);
}

}  // namespace shardgate::conf
