// TLS from the proxy to the servers (`server_tls:`): the shared client context of one config
// snapshot, and the SSLRequest negotiation and handshake of one connection.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "absl/status/statusor.h"
#include "conf/config.h"
#include "proxy/server_stream.h"

namespace shardgate::proxy {

// Contract: immutable once built and shared by every worker (an SSL_CTX may create SSL objects
// from several threads at once); connections keep it alive while they use it.
struct ServerTls {
  explicit ServerTls(conf::ServerTlsConfig c)
      : config(std::move(c)), context(boost::asio::ssl::context::tls_client) {}
  conf::ServerTlsConfig config;
  mutable boost::asio::ssl::context context;  // mutable: asio::ssl::stream wants a non-const one
};

// Loads root_cert (and cert/key) into a new client context; null when sslmode is disable.
// Errors (a bad PEM file) are kInvalidArgument naming the file.
absl::StatusOr<std::shared_ptr<const ServerTls>> MakeServerTls(const conf::ServerTlsConfig& config);

// After the TCP connect: sends SSLRequest, reads the one-byte answer and, on 'S', performs the
// TLS handshake on `stream` (SNI when `host` is a name; with verify-full the host, a DNS name or
// an IP address, must match the certificate). 'N' leaves the stream plain for prefer and is an
// error otherwise. Errors are the reason only ("server does not support SSL", "TLS handshake
// failed: certificate verify failed (...)"); the caller names the shard.
boost::asio::awaitable<absl::Status> NegotiateTls(ServerStream& stream, const ServerTls& tls,
                                                  const std::string& host);

}  // namespace shardgate::proxy
