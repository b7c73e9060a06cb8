// server_tls: the client context built once per config snapshot, and the per-connection
// SSLRequest exchange and handshake with libpq's sslmode semantics.
#include "proxy/server_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <exception>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "proxy/io.h"

namespace shardgate::proxy {

namespace ssl = boost::asio::ssl;

absl::StatusOr<std::shared_ptr<const ServerTls>> MakeServerTls(
    const conf::ServerTlsConfig& config) {
  if (!config.Enabled()) return std::shared_ptr<const ServerTls>();
  std::string what;
  try {
    auto tls = std::make_shared<ServerTls>(config);
    ssl::context& ctx = tls->context;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (!config.root_cert.empty()) {
      what = "root_cert " + config.root_cert;
      ctx.load_verify_file(config.root_cert);
    }
    if (!config.cert.empty()) {
      what = "cert " + config.cert;
      ctx.use_certificate_chain_file(config.cert);
      what = "key " + config.key;
      ctx.use_private_key_file(config.key, ssl::context::pem);
    }
    // prefer and require encrypt without checking who answers, as libpq does.
    ctx.set_verify_mode(config.Verifies() ? ssl::verify_peer : ssl::verify_none);
    return std::shared_ptr<const ServerTls>(std::move(tls));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("server_tls: cannot load ", what, ": ", e.what()));
  }
}

namespace {

// "certificate verify failed (unable to get local issuer certificate)": OpenSSL's reason
// without the library name, and what the chain or name check found.
std::string HandshakeError(const boost::system::error_code& ec, SSL* ssl) {
  std::string why;
  if (ec.category() == boost::asio::error::get_ssl_category()) {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    why = reason != nullptr ? reason : ec.message();
  } else {
    why = ec.message();
  }
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    absl::StrAppend(&why, " (", X509_verify_cert_error_string(verify), ")");
  }
  return absl::StrCat("TLS handshake failed: ", why);
}

}  // namespace

asio::awaitable<absl::Status> NegotiateTls(ServerStream& stream, const ServerTls& tls,
                                           const std::string& host) {
  const conf::SslMode mode = tls.config.sslmode;
  std::string request;
  protocol::AppendSslRequest(request);
  auto [wec, wn] = co_await asio::async_write(stream.socket(), asio::buffer(request), kTuple);
  if (wec) co_return absl::UnavailableError("could not send SSL negotiation: " + wec.message());
  // Exactly one byte: anything the server sent after 'S' and before the handshake must not be
  // read as plaintext (CVE-2021-23222).
  char answer = 0;
  for (;;) {
    auto [rec, n] = co_await stream.socket().async_read_some(asio::buffer(&answer, 1), kTuple);
    if (rec) {
      co_return absl::UnavailableError("could not receive the answer to the SSL negotiation: " +
                                       rec.message());
    }
    if (n == 1) break;
  }
  if (answer == 'N') {
    if (mode == conf::SslMode::kPrefer) co_return absl::OkStatus();
    co_return absl::UnavailableError(absl::StrCat("server does not support SSL, but sslmode ",
                                                  AbslView(conf::SslModeName(mode)),
                                                  " requires it"));
  }
  if (answer != 'S') {
    co_return absl::UnavailableError(
        absl::StrCat("unexpected answer to the SSL negotiation (byte ",
                     static_cast<int>(static_cast<unsigned char>(answer)), ")"));
  }

  ServerStream::TlsLayer& layer = stream.StartTls(tls.context);
  SSL* ssl = layer.native_handle();
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  const bool is_ip = !ec;
  // SNI carries names only (RFC 6066), as libpq's sslsni does.
  if (!is_ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (mode == conf::SslMode::kVerifyFull) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                          : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) co_return absl::InternalError("cannot set the host name to verify: " + host);
  }
  auto [hec] = co_await layer.async_handshake(ssl::stream_base::client, kTuple);
  if (hec) co_return absl::UnavailableError(HandshakeError(hec, ssl));
  co_return absl::OkStatus();
}

}  // namespace shardgate::proxy
