// ClientSession, first half: TLS/GSS negotiation, cancel requests, startup checks, client
// authentication (SCRAM-SHA-256, md5, trust) and the client write path.
#include "proxy/client_session.h"

#include <openssl/rand.h>
#include <sys/socket.h>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "protocol/auth.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"
#include "proxy/cancel_registry.h"
#include "proxy/pool.h"
#include "proxy/worker.h"
#include "spdlog/spdlog.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

// The `options` startup parameter as PostgreSQL reads it (pg_split_opts): words separated by
// whitespace, a backslash escapes the next character; `-c name=value` and `--name=value` set a
// parameter for the session. Other backend switches are refused rather than silently ignored.
absl::Status ParseStartupOptions(std::string_view options,
                                 std::map<std::string, std::string, std::less<>>& params) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < options.size(); ++i) {
    char c = options[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    if (c == '\\' && i + 1 < options.size()) c = options[++i];
    word.push_back(c);
    in_word = true;
  }
  if (in_word) words.push_back(std::move(word));
  for (size_t i = 0; i < words.size(); ++i) {
    std::string setting;
    if (words[i] == "-c" && i + 1 < words.size()) {
      setting = words[++i];
    } else if (words[i].rfind("-c", 0) == 0 && words[i].size() > 2) {
      setting = words[i].substr(2);
    } else if (words[i].rfind("--", 0) == 0) {
      setting = words[i].substr(2);
    } else {
      return PgStatus("0A000", "unsupported option in the startup packet: " + words[i],
                      "shardgate accepts only -c name=value and --name=value in options.");
    }
    const size_t eq = setting.find('=');
    if (eq == std::string::npos || eq == 0) {
      return PgStatus("42601", "invalid option in the startup packet: " + setting);
    }
    std::string name = setting.substr(0, eq);
    for (char& ch : name) {
      if (ch == '-') ch = '_';
    }
    params[name] = setting.substr(eq + 1);
  }
  return absl::OkStatus();
}

}  // namespace

ClientSession::ClientSession(Worker& worker, tcp::socket socket)
    : worker_(worker),
      stream_(std::move(socket)),
      writer_done_(worker.io()),
      pump_done_(worker.io()),
      query_timer_(worker.io()),
      progress_(worker.io()) {
  writer_done_.expires_at(asio::steady_timer::time_point::max());
  progress_.expires_at(asio::steady_timer::time_point::max());
  pump_done_.expires_at(asio::steady_timer::time_point::max());
}

ClientSession::Info ClientSession::Describe() const {
  Info info;
  info.user = user_name_;
  info.database = db_name_;
  info.admin = admin_;
  info.state = server_ || dist_ || copy_in_ ? "active" : "idle";
  boost::system::error_code ec;
  auto& socket = const_cast<ClientStream&>(stream_).Socket();
  const auto remote = socket.remote_endpoint(ec);
  if (!ec) {
    info.addr = remote.address().to_string();
    info.port = remote.port();
  }
  info.connect_time = connect_time_;
  info.request_time = request_time_;
  info.tls = stream_.IsTls();
  if (auto it = startup_params_.find("application_name"); it != startup_params_.end()) {
    info.application_name = it->second;
  }
  auto add = [&](const ServerConnection& c) {
    const BackendTarget& t = c.target();
    info.servers.push_back({t.shard, absl::StrCat(t.host, ":", t.port), t.user, t.dbname,
                            c.pid()});
  };
  if (server_) add(*server_);
  if (dist_) {
    for (const auto& leg : dist_->legs) {
      if (leg->conn) add(*leg->conn);
    }
  }
  return info;
}

ClientSession::~ClientSession() {
  if (gate_ && gate_epoch_) gate_->Leave(*gate_epoch_);
  EndCacheWrites(true);
  if (cancel_pid_ != 0) CancelRegistry::Global().Unregister(cancel_pid_);
  if (counted_) worker_.runtime().clients.fetch_sub(1);
  if (user_counted_) worker_.runtime().RemoveUserConnection(user_name_);
}

// After authentication, as PostgreSQL checks a role's connection limit: who may not log in
// learns nothing about the limit.
absl::Status ClientSession::CountUserConnection() {
  if (!worker_.runtime().AddUserConnection(user_name_, user_->max_connections)) {
    return PgStatus("53300", absl::StrCat("too many connections for role \"", user_name_, "\""),
                    "Raise max_connections of the user in the shardgate config.");
  }
  user_counted_ = true;
  return absl::OkStatus();
}

asio::awaitable<void> ClientSession::Run() {
  auto self = shared_from_this();
  worker_.SessionStarted(this);
  connect_time_ = request_time_ = std::time(nullptr);
  boost::system::error_code ec;
  stream_.Socket().set_option(tcp::no_delay(true), ec);
  config_ = worker_.runtime().config();

  absl::StatusOr<bool> started;
  {
    Deadline login(worker_.io().get_executor(), config_->timeouts.client_login,
                   [self] { self->stream_.Close(); });
    started = co_await Startup();
    if (login.expired()) {
      started = PgStatus("08006", "client did not finish startup and authentication in time");
    }
  }
  if (!started.ok()) {
    // As PostgreSQL logs a failed login (never the password: the status carries none). A
    // connection closed before its startup packet (a TCP health probe) is not worth a line.
    const auto remote = stream_.Socket().remote_endpoint(ec);
    if (!user_name_.empty()) {
      spdlog::info("login failed for user \"{}\", database \"{}\" from {}: {} ({})", user_name_,
                   db_name_, ec ? std::string("?") : remote.address().to_string(),
                   std::string(started.status().message()), SqlState(started.status()));
    }
    co_await Fatal(started.status());
  } else if (*started) {
    if (db_ == nullptr) {
      admin_ = true;
      co_await ServeAdmin();
    } else {
      co_await Serve();
    }
  }
  stream_.Close();
  worker_.SessionEnded(this);
}

void ClientSession::OnShutdown() {
  shutdown_requested_ = true;
  if (!server_ && !closing_) {
    // Idle between transactions: the client loop is blocked reading; closing the socket makes
    // it leave. Tell the client why first (best effort, the write is tiny).
    closing_ = true;
    std::string out;
    p::AppendError(out, PgError{"FATAL", "57P01",
                                "terminating connection due to administrator command", "", ""});
    boost::system::error_code ignored;
    if (!stream_.IsTls()) stream_.Socket().write_some(asio::buffer(out), ignored);
    stream_.Close();
  }
}

asio::awaitable<bool> ClientSession::FlushClient() {
  if (client_writing_) {
    // Another coroutine is writing; it loops until client_out_ is empty, so our bytes go too.
    while (client_writing_) co_await writer_done_.async_wait(kTuple);
    co_return client_ok_;
  }
  client_writing_ = true;
  while (!client_out_.empty() && client_ok_) {
    client_sending_.swap(client_out_);
    ++client_flushes_;
    if (stats_) stats_->sent += static_cast<int64_t>(client_sending_.size());
    auto ec = co_await stream_.WriteAll(asio::buffer(client_sending_));
    client_sending_.clear();
    if (ec) client_ok_ = false;
  }
  if (client_sending_.capacity() > (1u << 20)) std::string().swap(client_sending_);
  client_writing_ = false;
  writer_done_.cancel();
  writer_done_.expires_at(asio::steady_timer::time_point::max());
  co_return client_ok_;
}

void ClientSession::CheckHalfClosedClient() {
  if (!client_read_pending_ || client_writing_ || !stream_.Quiet()) return;
  if (half_close_seen_ != client_reads_) {  // this wait began since the last sweep
    half_close_seen_ = client_reads_;
    return;
  }
  if (half_close_peeked_ == client_reads_) return;  // one peek per wait
  half_close_peeked_ = client_reads_;
  char byte;
  if (::recv(stream_.Socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
    spdlog::debug("client {}@{}: closed its side with its last message", user_name_, db_name_);
    stream_.Close();  // the pending read fails: the session ends as on EOF
  }
}

bool ClientSession::FlushClientNow() {
  if (client_writing_ || !client_ok_) return false;
  if (client_out_.empty()) return true;
  if (stream_.IsTls()) return false;
  boost::system::error_code ec;
  const size_t n = TrySend(stream_.Socket(), asio::buffer(client_out_), ec);
  if (ec) {
    client_ok_ = false;
    return false;
  }
  if (n == 0) return false;
  ++client_flushes_;
  if (stats_) stats_->sent += static_cast<int64_t>(n);
  if (n < client_out_.size()) {
    client_out_.erase(0, n);
    return false;
  }
  client_out_.clear();
  if (client_out_.capacity() > (1u << 20)) std::string().swap(client_out_);
  return true;
}

asio::awaitable<void> ClientSession::Fatal(const absl::Status& status) {
  if (!client_ok_) co_return;
  CountError(SqlState(status));
  p::AppendError(client_out_, ToPgError(status, "FATAL"));
  co_await FlushClient();
  closing_ = true;
}

asio::awaitable<absl::StatusOr<protocol::Frame>> ClientSession::ReadClientFrame(
    uint32_t max_size) {
  for (;;) {
    p::FrameResult r = p::ReadFrame(client_in_.Data(), max_size);
    if (r.status == p::FrameStatus::kFrame) co_return r.frame;
    if (r.status == p::FrameStatus::kError) co_return r.error;
    // Part of a message is here: the rest must keep coming (timeouts.client_message). Nothing
    // is armed between messages, the common case.
    const std::chrono::milliseconds stall =
        client_in_.Empty() ? std::chrono::milliseconds(0) : config_->timeouts.client_message;
    Deadline deadline(worker_.io().get_executor(), stall, [this] {
      boost::system::error_code ignored;
      stream_.Socket().cancel(ignored);
    });
    ++client_reads_;
    client_read_pending_ = true;
    auto [ec, n] = co_await stream_.AsyncReadSome(client_in_.Prepare(r.need), kTuple);
    client_read_pending_ = false;
    if (deadline.expired()) {
      co_return PgStatus("08P01",
                         absl::StrCat("incomplete message from client: nothing more arrived "
                                      "within ", stall.count(), " ms"),
                         "A client stopped in the middle of a message (timeouts.client_message).");
    }
    if (ec) co_return PgStatus("08006", "client closed the connection");
    client_in_.Commit(n);
  }
}

asio::awaitable<absl::StatusOr<bool>> ClientSession::Startup() {
  // Untyped packets until a StartupMessage: SSLRequest and GSSENCRequest may come first.
  for (;;) {
    p::FrameResult r;
    for (;;) {
      r = p::ReadStartupFrame(client_in_.Data());
      if (r.status != p::FrameStatus::kNeedMore) break;
      ++client_reads_;
      client_read_pending_ = true;
      auto [ec, n] = co_await stream_.AsyncReadSome(client_in_.Prepare(r.need), kTuple);
      client_read_pending_ = false;
      if (ec) co_return false;  // a port probe or a client that gave up: nothing to say
      client_in_.Commit(n);
    }
    if (r.status == p::FrameStatus::kError) co_return r.error;
    auto packet = p::ParseStartupPacket(r.frame);
    client_in_.Consume(r.frame.whole.size());
    if (!packet.ok()) co_return packet.status();

    switch (packet->kind) {
      case p::StartupPacket::Kind::kSslRequest: {
        asio::ssl::context* tls = worker_.runtime().tls();
        const bool accept = tls != nullptr && !stream_.IsTls();
        if (!client_in_.Empty()) {
          co_return PgStatus("08P01", "received unencrypted data after SSL request");
        }
        char answer = accept ? 'S' : 'N';
        if (auto ec = co_await stream_.WriteAll(asio::buffer(&answer, 1))) co_return false;
        if (accept) {
          if (auto ec = co_await stream_.StartTls(*tls)) {
            spdlog::info("client TLS handshake failed: {}", ec.message());
            co_return false;
          }
        }
        continue;
      }
      case p::StartupPacket::Kind::kGssEncRequest: {
        char answer = 'N';
        if (auto ec = co_await stream_.WriteAll(asio::buffer(&answer, 1))) co_return false;
        continue;
      }
      case p::StartupPacket::Kind::kCancel: {
        auto target = CancelRegistry::Global().Lookup(packet->cancel.pid, packet->cancel.secret);
        if (target) co_await SendCancel(target->host, target->port, target->pid, target->secret);
        co_return false;  // PostgreSQL answers a cancel request with nothing but a close
      }
      case p::StartupPacket::Kind::kStartup:
        break;
    }

    const p::StartupMessage& startup = packet->startup;
    user_name_ = std::string(startup.Get("user"));
    db_name_ = std::string(startup.Get("database"));
    if (user_name_.empty()) co_return PgStatus("28000", "no PostgreSQL user name specified in startup packet");
    if (db_name_.empty()) db_name_ = user_name_;
    for (const auto& [name, value] : startup.params) {
      if (name == "user" || name == "database" || name == "replication") continue;
      if (name == "options") {
        CO_RETURN_IF_ERROR(ParseStartupOptions(value, startup_params_));
        continue;
      }
      startup_params_[std::string(name)] = std::string(value);
    }
    if (!startup.Get("replication").empty() && startup.Get("replication") != "false") {
      co_return PgStatus("0A000", "replication connections are not supported by shardgate");
    }
    break;
  }

  if (worker_.runtime().shutting_down.load()) {
    co_return PgStatus("57P03", "shardgate is shutting down");
  }
  counted_ = true;
  if (worker_.runtime().clients.fetch_add(1) >= config_->limits.max_client_conn) {
    co_return PgStatus("53300", "sorry, too many clients already",
                       "Raise limits.max_client_conn in the shardgate config.");
  }

  user_ = config_->FindUser(user_name_);
  if (user_ == nullptr) {
    co_return PgStatus("28000", absl::StrCat("role \"", user_name_, "\" does not exist"));
  }
  if (db_name_ == "shardgate") {
    // The admin console: a virtual database answered by the proxy itself.
    if (!config_->IsAdmin(user_name_)) {
      co_return PgStatus("28000", absl::StrCat("user \"", user_name_,
                                               "\" may not open the admin console"),
                         "List the user under admin.users in the config.");
    }
    CO_RETURN_IF_ERROR(co_await Authenticate(*user_));
    CO_RETURN_IF_ERROR(CountUserConnection());
    p::AppendAuthentication(client_out_, p::AuthCode::kOk);
    p::AppendParameterStatus(client_out_, "server_version", "15.0 (shardgate)");
    p::AppendParameterStatus(client_out_, "client_encoding", "UTF8");
    p::AppendParameterStatus(client_out_, "standard_conforming_strings", "on");
    p::AppendParameterStatus(client_out_, "DateStyle", "ISO, MDY");
    p::AppendParameterStatus(client_out_, "integer_datetimes", "on");
    p::AppendBackendKeyData(client_out_, 0, 0);
    p::AppendReadyForQuery(client_out_, 'I');
    co_return co_await FlushClient();
  }
  db_ = config_->FindDatabase(db_name_);
  if (db_ == nullptr) {
    co_return PgStatus("3D000", absl::StrCat("database \"", db_name_, "\" does not exist"));
  }
  CO_RETURN_IF_ERROR(co_await Authenticate(*user_));
  CO_RETURN_IF_ERROR(CountUserConnection());
  user_rate_ = &worker_.runtime().rate_limits.user(user_->name);
  db_rate_ = &worker_.runtime().rate_limits.database(db_name_);
  pool_mode_ = user_->pool_mode;
  stats_ = &worker_.stats(db_name_, user_->name);
  gate_ = &worker_.runtime().gate(db_name_);
  if (db_->Sharded()) {
    map_version_ = worker_.runtime().map_version();
    topology_ = worker_.runtime().topology(db_name_);
    if (!topology_) co_return PgStatus("XX000", "no shard map for database " + db_name_);
    planner_.emplace(topology_->map());
    // A sharded client talks to a different server per transaction by nature.
    pool_mode_ = conf::PoolMode::kTransaction;
    UpdateCache(*db_);
  }

  // The login's server: the first shard's (or default_shard's) primary. In a sharded database
  // the other shards follow as fallbacks, so that one dead or hung shard does not stop every
  // login: a shard whose primary is known to be down (the breaker) is passed over, one that
  // cannot be reached now opens its breaker and the next is tried.
  std::vector<const conf::ShardConfig*> login_shards = {&db_->shards.front()};
  if (db_->default_shard) {
    if (const auto* s = db_->FindShard(*db_->default_shard)) login_shards[0] = s;
  }
  if (topology_) {
    for (const auto& s : db_->shards) {
      if (&s != login_shards[0]) login_shards.push_back(&s);
    }
  }

  // Settings the client asked for at startup are session state replayed onto every server.
  for (const auto& [name, value] : startup_params_) {
    // Names go into SQL: only plain GUC names (letters, digits, '_' and '.') are replayed.
    if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") !=
                            std::string::npos) {
      continue;
    }
    std::string quoted = absl::StrReplaceAll(value, {{"'", "''"}});
    startup_settings_[absl::AsciiStrToLower(name)] =
        absl::StrCat("SELECT pg_catalog.set_config('", absl::StrReplaceAll(name, {{"'", "''"}}),
                     "', '", quoted, "', false)");
  }
  settings_ = startup_settings_;

  // A server now: it proves the shard is reachable, checks the startup settings and supplies
  // the ParameterStatus set. In transaction pooling a login whose startup settings a server of
  // this pool already accepted skips that (its pool has a connection open): the answers come
  // from the pool's memory and the settings are replayed with the first transaction.
  for (const auto& [name, stmt] : startup_settings_) {
    absl::StrAppend(&startup_key_, name, "=", stmt, ";");
  }
  const Pool::Parameters* known = nullptr;
  absl::Status login_status;
  for (size_t i = 0; i < login_shards.size(); ++i) {
    const conf::ShardConfig& shard = *login_shards[i];
    const int index = topology_ ? topology_->map()->FindShard(shard.name).value_or(0) : 0;
    if (topology_) {
      login_status = topology_->WriteServerAvailable(index);
      if (!login_status.ok()) continue;
    }
    absl::Status target_error;
    target_ = MakeTarget(shard, topology_ ? topology_->Primary(index) : shard.primary,
                         &target_error);
    CO_RETURN_IF_ERROR(target_error);
    target_pool_ = &PoolOf(target_);
    if (pool_mode_ == conf::PoolMode::kTransaction) known = target_pool_->KnownLogin(startup_key_);
    if (known != nullptr) break;
    login_status = co_await Attach(*target_pool_);
    if (login_status.ok()) {
      if (topology_) attached_shard_ = index;
      break;
    }
    if (!topology_ || SqlState(login_status) != "08001") co_return login_status;
    topology_->PrimaryConnectFailed(index, login_status);
  }
  CO_RETURN_IF_ERROR(login_status);
  if (known == nullptr) {
    // Attach appended the replay of the startup settings to server_out_ and queued what to
    // expect; the client's login answers go out first, its ReadyForQuery after the replay,
    // whose success ProcessServerFrame notes in the pool (at once when there is none).
    if (expected_.empty()) {
      pool_->NoteLogin(startup_key_, server_->parameters());
    } else {
      login_check_pending_ = true;
    }
  }
  cancel_slot_ = std::make_shared<CancelSlot>();
  auto [pid, secret] = CancelRegistry::Global().Register(cancel_slot_);
  cancel_pid_ = pid;
  cancel_secret_ = secret;
  if (server_) {
    cancel_slot_->Set(server_->target().host, server_->target().port, server_->pid(),
                      server_->secret());
  }
  p::AppendAuthentication(client_out_, p::AuthCode::kOk);
  // A known login's set is what a server reported with these very settings applied (DateStyle
  // "German, DMY" for "German"): as is. A server's current set is its previous client's: the
  // client's own values go first, and the replay's ParameterStatus (forwarded before the
  // ReadyForQuery) then brings the server's spelling of them.
  for (const auto& [name, value] : server_ ? server_->parameters() : *known) {
    auto it = startup_params_.find(name);
    p::AppendParameterStatus(client_out_, name,
                             server_ && it != startup_params_.end() ? it->second : value);
  }
  p::AppendBackendKeyData(client_out_, cancel_pid_, cancel_secret_);
  Push(Expect::kInjectReady);
  if (!FlushServerNow() && !co_await FlushServer()) co_return false;
  if (!FlushClientNow() && !co_await FlushClient()) co_return false;
  // Nothing went to the server (no settings to replay): back to the pool now, not when the
  // client's first request ends (the pump's read, started by Attach, waits for nothing).
  if (CanRelease()) co_await ReleaseIfIdle();
  co_return true;
}

BackendTarget ClientSession::MakeTarget(const conf::ShardConfig& shard,
                                       const conf::Endpoint& ep, absl::Status* error) const {
  BackendTarget target;
  target.shard = shard.name;
  target.database = db_->name;
  target.host = ep.host;
  target.port = ep.port;
  target.dbname = ep.dbname.empty() ? db_->name : ep.dbname;
  target.user = ep.user.empty() ? user_name_ : ep.user;
  if (!ep.password.empty()) {
    target.password = ep.password;
  } else if (!p::IsScramVerifier(user_->password)) {
    target.password = user_->password;
  } else if (ep.user.empty()) {
    *error = PgStatus("08001",
                      absl::StrCat("no password to log in to shard \"", shard.name, "\" as \"",
                                   user_name_, "\""),
                      "The user's password is a SCRAM verifier; set user/password on the "
                      "shard's primary and replicas in the config.");
  }
  return target;
}

Pool& ClientSession::PoolOf(const BackendTarget& target) {
  return worker_.pools().Get(target, db_->pool_size, config_->timeouts.connect);
}

absl::StatusOr<Pool*> ClientSession::PoolFor(const conf::ShardConfig& shard,
                                             const conf::Endpoint& endpoint) {
  for (const auto& [known, pool] : endpoint_pools_) {
    if (known == &endpoint) return pool;
  }
  absl::Status error;
  BackendTarget target = MakeTarget(shard, endpoint, &error);
  if (!error.ok()) return error;
  constexpr size_t kMaxRemembered = 32;  // endpoints of a map, bounded for a huge one
  if (endpoint_pools_.size() >= kMaxRemembered) endpoint_pools_.clear();
  Pool* pool = &PoolOf(target);
  endpoint_pools_.emplace_back(&endpoint, pool);
  return pool;
}

asio::awaitable<absl::Status> ClientSession::Authenticate(const conf::UserConfig& user) {
  const absl::Status failed =
      PgStatus("28P01", absl::StrCat("password authentication failed for user \"", user.name, "\""));
  const uint32_t kMaxAuth = 64 * 1024;
  switch (user.auth) {
    case conf::AuthMethod::kTrust:
      co_return absl::OkStatus();

    case conf::AuthMethod::kMd5: {
      unsigned char salt[4];
      RAND_bytes(salt, sizeof(salt));
      std::string_view salt_view(reinterpret_cast<const char*>(salt), 4);
      p::AppendAuthentication(client_out_, p::AuthCode::kMd5, salt_view);
      if (!co_await FlushClient()) co_return PgStatus("08006", "client closed the connection");
      auto frame = co_await ReadClientFrame(kMaxAuth);
      if (!frame.ok()) co_return frame.status();
      if (frame->type != p::fe::kPassword) co_return PgStatus("08P01", "expected a password message");
      auto response = p::ParsePasswordMessage(frame->body);
      bool ok = response.ok() && p::Md5Verify(user.name, user.password, salt_view, *response);
      client_in_.Consume(frame->whole.size());
      if (!ok) co_return failed;
      co_return absl::OkStatus();
    }

    case conf::AuthMethod::kScram: {
      p::ScramServer scram(user.password);
      p::AppendSaslMechanisms(client_out_);
      if (!co_await FlushClient()) co_return PgStatus("08006", "client closed the connection");
      auto first = co_await ReadClientFrame(kMaxAuth);
      if (!first.ok()) co_return first.status();
      if (first->type != p::fe::kPassword) co_return PgStatus("08P01", "expected SASL initial response");
      auto initial = p::ParseSaslInitialResponse(first->body);
      if (!initial.ok()) co_return initial.status();
      if (initial->mechanism != "SCRAM-SHA-256") {
        co_return PgStatus("28000", "client selected an invalid SASL authentication mechanism");
      }
      auto server_first = scram.HandleClientFirst(initial->data);
      client_in_.Consume(first->whole.size());
      if (!server_first.ok()) co_return server_first.status();
      p::AppendAuthentication(client_out_, p::AuthCode::kSaslContinue, *server_first);
      if (!co_await FlushClient()) co_return PgStatus("08006", "client closed the connection");
      auto final_frame = co_await ReadClientFrame(kMaxAuth);
      if (!final_frame.ok()) co_return final_frame.status();
      if (final_frame->type != p::fe::kPassword) co_return PgStatus("08P01", "expected SASL response");
      auto server_final = scram.HandleClientFinal(final_frame->body);
      client_in_.Consume(final_frame->whole.size());
      if (!server_final.ok()) {
        if (SqlState(server_final.status()) == "28P01") co_return failed;
        co_return server_final.status();
      }
      p::AppendAuthentication(client_out_, p::AuthCode::kSaslFinal, *server_final);
      co_return absl::OkStatus();
    }
  }
  co_return failed;
}

}  // namespace shardgate::proxy
