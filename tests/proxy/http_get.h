// A minimal HTTP/1.1 client for the tests of /metrics and /healthz, and a reader of samples in
// a Prometheus text exposition.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>

namespace shardgate::testing {

// A plain HTTP/1.1 GET on 127.0.0.1:`port`: (status code, body); (-1, why) on failure.
inline std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return {-1, "socket"};
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return {-1, "connect"};
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return {-1, "write"};
  }
  std::string resp;
  char buf[8192];
  for (int i = 0; i < 10000; ++i) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t sp = resp.find(' ');
  const size_t body = resp.find("\r\n\r\n");
  if (sp == std::string::npos || body == std::string::npos) return {-1, resp};
  return {std::atoi(resp.c_str() + sp + 1), resp.substr(body + 4)};
}

// The value of the sample `name{labels}` in an exposition, or -1 when absent.
inline double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace shardgate::testing
