// Backend connections: connect with a deadline, log in with whatever method the server asks.
#include "proxy/server_connection.h"

#include <array>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>

#include "absl/strings/str_cat.h"
#include "protocol/auth.h"
#include "protocol/encoder.h"
#include "protocol/messages.h"

namespace shardgate::proxy {

namespace p = protocol;

std::string BackendTarget::Key() const {
  std::string key;
  AppendKey(key);
  return key;
}

void BackendTarget::AppendKey(std::string& out) const {
  absl::StrAppend(&out, user, "@", host, ":", port, "/", dbname);
}

namespace {

// Connects `socket` to host:port: an IP literal directly, a name through the resolver.
asio::awaitable<boost::system::error_code> ConnectTcp(tcp::socket& socket, const std::string& host,
                                                     int port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (!ec) {
    auto [cec] = co_await socket.async_connect(tcp::endpoint(address, port), kTuple);
    co_return cec;
  }
  tcp::resolver resolver(socket.get_executor());
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kTuple);
  if (rec) co_return rec;
  auto [cec, ep] = co_await asio::async_connect(socket, results, kTuple);
  co_return cec;
}

}  // namespace

asio::awaitable<absl::StatusOr<std::unique_ptr<ServerConnection>>> ServerConnection::Connect(
    const BackendTarget& target, std::chrono::milliseconds timeout,
    std::shared_ptr<const ServerTls> tls) {
  auto executor = co_await asio::this_coro::executor;
  std::unique_ptr<ServerConnection> conn(
      new ServerConnection(tcp::socket(executor), target, std::move(tls)));
  ServerConnection* raw = conn.get();
  absl::Status st;
  {
    // Closing the socket also ends an SSL negotiation or TLS handshake that stalls.
    Deadline deadline(executor, timeout, [raw] {
      boost::system::error_code ignored;
      raw->socket().close(ignored);
    });
    st = co_await conn->ConnectAndLogin();
    if (deadline.expired()) {
      st = PgStatus("08001", absl::StrCat("could not connect to shard \"", target.shard, "\" at ",
                                          target.host, ":", target.port, ": timeout after ",
                                          timeout.count(), " ms"));
    }
  }
  if (!st.ok()) {
    conn->MarkBroken();
    conn->Close();
    co_return st;
  }
  co_return conn;
}

asio::awaitable<absl::Status> ServerConnection::ConnectAndLogin() {
  tcp::socket& socket = stream_.socket();
  boost::system::error_code ec = co_await ConnectTcp(socket, target_.host, target_.port);
  if (ec) {
    co_return PgStatus("08001", absl::StrCat("could not connect to shard \"", target_.shard,
                                             "\" at ", target_.host, ":", target_.port, ": ",
                                             ec.message()));
  }
  socket.set_option(tcp::no_delay(true), ec);
  // Plain streams: writes try the kernel directly (io.h TrySend). Harmless under TLS, whose
  // operations are asynchronous anyway.
  socket.non_blocking(true, ec);
  if (tls_config_) {
    absl::Status st = co_await NegotiateTls(stream_, *tls_config_, target_.host);
    if (!st.ok()) {
      co_return PgStatus("08001", absl::StrCat("could not connect to shard \"", target_.shard,
                                               "\" at ", target_.host, ":", target_.port, ": ",
                                               st.message()));
    }
  }
  co_return co_await Login();
}

asio::awaitable<absl::Status> ServerConnection::Login() {
  std::string out;
  std::array<std::pair<std::string_view, std::string_view>, 2> params{{
      {"user", target_.user}, {"database", target_.dbname}}};
  p::AppendStartup(out, params);
  auto [wec, wn] = co_await asio::async_write(stream_, asio::buffer(out), kTuple);
  if (wec) co_return PgStatus("08001", "could not send startup packet: " + wec.message());

  std::optional<p::ScramClient> scram;
  for (;;) {
    auto frame = co_await ReadTypedFrame(stream_, in_, p::kDefaultMaxMessageSize);
    if (!frame.ok()) {
      co_return PgStatus("08001", absl::StrCat("shard \"", target_.shard,
                                               "\" closed the connection during login"));
    }
    const char type = frame->type;
    const std::string_view body = frame->body;
    out.clear();
    absl::Status st;
    switch (type) {
      case p::be::kAuthentication: {
        auto auth = p::ParseAuthentication(body);
        if (!auth.ok()) { st = auth.status(); break; }
        switch (auth->code) {
          case p::AuthCode::kOk:
            break;
          case p::AuthCode::kCleartext:
            p::AppendPasswordMessage(out, target_.password);
            break;
          case p::AuthCode::kMd5:
            p::AppendPasswordMessage(out, p::Md5Response(target_.user, target_.password,
                                                         auth->data));
            break;
          case p::AuthCode::kSasl:
            scram.emplace(target_.password);
            p::AppendSaslInitialResponse(out, "SCRAM-SHA-256", scram->ClientFirst());
            break;
          case p::AuthCode::kSaslContinue: {
            if (!scram) { st = PgStatus("08P01", "unexpected SASL continue"); break; }
            auto final_msg = scram->HandleServerFirst(auth->data);
            if (!final_msg.ok()) { st = final_msg.status(); break; }
            p::AppendSaslResponse(out, *final_msg);
            break;
          }
          case p::AuthCode::kSaslFinal:
            if (!scram) { st = PgStatus("08P01", "unexpected SASL final"); break; }
            st = scram->VerifyServerFinal(auth->data);
            break;
          default:
            st = PgStatus("08001", absl::StrCat("shard \"", target_.shard,
                                                "\" asks for an unsupported authentication ",
                                                static_cast<int>(auth->code)));
        }
        break;
      }
      case p::be::kParameterStatus: {
        auto ps = p::ParseParameterStatus(body);
        if (!ps.ok()) { st = ps.status(); break; }
        parameters_[std::string(ps->name)] = std::string(ps->value);
        break;
      }
      case p::be::kBackendKeyData: {
        auto key = p::ParseBackendKeyData(body);
        if (!key.ok()) { st = key.status(); break; }
        pid_ = key->pid;
        secret_ = key->secret;
        break;
      }
      case p::be::kErrorResponse:
        st = p::ErrorResponseStatus(body);
        break;
      case p::be::kReadyForQuery:
        in_.Consume(frame->whole.size());
        tx_status_ = 'I';
        co_return absl::OkStatus();
      default:
        break;  // NoticeResponse, NegotiateProtocolVersion: nothing to do
    }
    in_.Consume(frame->whole.size());
    if (!st.ok()) co_return st;
    if (!out.empty()) {
      auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(out), kTuple);
      if (ec) co_return PgStatus("08001", "could not send authentication: " + ec.message());
    }
  }
}

std::string ServerConnection::EvictPrepared() {
  // A scan: it runs only when a connection is full, and max_prepared_statements is small.
  auto victim = prepared_.end();
  for (auto it = prepared_.begin(); it != prepared_.end(); ++it) {
    if (victim == prepared_.end() || it->second < victim->second) victim = it;
  }
  if (victim == prepared_.end()) return {};
  std::string name = victim->first;
  prepared_.erase(victim);
  return name;
}

asio::awaitable<absl::Status> ServerConnection::Reset(std::chrono::milliseconds timeout) {
  Deadline deadline(stream_.get_executor(), timeout, [this] {
    boost::system::error_code ignored;
    socket().cancel(ignored);
  });
  auto result = co_await SimpleQuery("DISCARD ALL");
  if (!result.ok()) {
    MarkBroken();
    co_return result.status();
  }
  prepared_.clear();
  settings_.clear();
  co_return absl::OkStatus();
}

asio::awaitable<absl::StatusOr<std::vector<std::optional<std::string>>>>
ServerConnection::SimpleQuery(std::string_view sql, const NotifyFn& on_notify) {
  std::string out;
  p::AppendQuery(out, sql);
  auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(out), kTuple);
  if (ec) {
    MarkBroken();
    co_return PgStatus("08006", ec.message());
  }
  std::vector<std::optional<std::string>> row;
  bool have_row = false;
  absl::Status error;
  for (;;) {
    auto frame = co_await ReadTypedFrame(stream_, in_, p::kDefaultMaxMessageSize);
    if (!frame.ok()) {
      MarkBroken();
      co_return frame.status();
    }
    const char type = frame->type;
    if (type == p::be::kDataRow && !have_row) {
      auto data = p::ParseDataRow(frame->body);
      if (data.ok()) {
        for (const auto& v : data->values) {
          row.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
        }
        have_row = true;
      }
    } else if (type == p::be::kErrorResponse) {
      error = p::ErrorResponseStatus(frame->body);
    } else if (type == p::be::kNotification && on_notify) {
      auto note = p::ParseNotification(frame->body);
      if (note.ok()) on_notify(note->channel, note->payload);
    } else if (type == p::be::kReadyForQuery) {
      tx_status_ = frame->body.empty() ? 'I' : frame->body[0];
      in_.Consume(frame->whole.size());
      break;
    }
    in_.Consume(frame->whole.size());
  }
  if (!error.ok()) co_return error;
  co_return row;
}

ServerConnection::~ServerConnection() {
  while (!followers_.empty()) {
    Follower& f = followers_.front();
    followers_.pop_front();
    f.timer.cancel();
  }
}

void ServerConnection::Close() {
  boost::system::error_code ignored;
  tcp::socket& socket = stream_.socket();
  if (socket.is_open() && !broken_) {
    // Best effort, non-blocking enough: 5 bytes (one small record under TLS). A TLS close
    // is not awaited (no close_notify exchange): the server takes Terminate as the end.
    std::string out;
    p::AppendTerminate(out);
    if (stream_.IsTls()) {
      // Only when idle: no pump may have a TLS read pending, whose engine state a synchronous
      // write would share.
      if (Idle()) stream_.tls()->write_some(asio::buffer(out), ignored);
    } else {
      socket.write_some(asio::buffer(out), ignored);
    }
  }
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  broken_ = true;
}

asio::awaitable<void> SendCancel(std::string host, int port, int32_t pid, int32_t secret) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  Deadline deadline(executor, std::chrono::seconds(5), [&socket] {
    boost::system::error_code ignored;
    socket.close(ignored);
  });
  if (co_await ConnectTcp(socket, host, port)) co_return;
  std::string out;
  p::AppendCancelRequest(out, pid, secret);
  auto [wec, n] = co_await asio::async_write(socket, asio::buffer(out), kTuple);
  if (wec) co_return;
  // The server closes the connection after reading the request; wait for that so the cancel
  // has been delivered before we return.
  char byte;
  co_await socket.async_read_some(asio::buffer(&byte, 1), kTuple);
}

absl::Status LostConnection(const ServerConnection& conn, std::string_view why) {
  return PgStatus("08006", absl::StrCat("lost connection to shard \"", conn.target().shard,
                                        "\": ", AbslView(why)));
}

}  // namespace shardgate::proxy
