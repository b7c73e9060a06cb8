// idle_client: opens many client connections over libpq (up to 64 connecting at once), runs one
// `SELECT 1` on each, prints `ready <connected> <failed>` and then holds them all idle until its
// standard input reaches EOF. The client side of the idle-connection memory figure of
// tools/bench/pgbench_compare.sh (the script reads the proxy's RSS before and after `ready`).
//
//   idle_client --conninfo "host=127.0.0.1 port=6432 ..." --count 10000
//
// Exit status: 0 ok (also when some connections failed: the count says how many), 2 bad usage.
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace shardgate::bench {
namespace {

constexpr size_t kMaxConnecting = 64;

struct Options {
  std::string conninfo;
  size_t count = 0;
};

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i], value = argv[i + 1];
    if (flag == "--conninfo") {
      o.conninfo = value;
    } else if (flag == "--count") {
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), o.count);
      if (ec != std::errc() || ptr != value.data() + value.size()) return false;
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && !o.conninfo.empty() && o.count > 0 && o.count <= 100000;
}

// Drives up to kMaxConnecting PQconnectStart connections at a time with poll(); returns the
// established ones, counts the rest in `failed`.
std::vector<PGconn*> ConnectAll(const Options& o, size_t& failed) {
  std::vector<PGconn*> done;
  std::deque<std::pair<PGconn*, PostgresPollingStatusType>> connecting;
  size_t started = 0;
  while (started < o.count || !connecting.empty()) {
    while (started < o.count && connecting.size() < kMaxConnecting) {
      ++started;
      PGconn* c = PQconnectStart(o.conninfo.c_str());
      if (c == nullptr || PQstatus(c) == CONNECTION_BAD) {
        if (c != nullptr && failed == 0) std::fprintf(stderr, "%s", PQerrorMessage(c));
        PQfinish(c);
        ++failed;
        continue;
      }
      connecting.emplace_back(c, PGRES_POLLING_WRITING);
    }
    std::vector<pollfd> fds;
    for (auto& [c, st] : connecting) {
      const short events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
      fds.push_back(pollfd{PQsocket(c), events, 0});
    }
    if (::poll(fds.data(), fds.size(), 10000) <= 0) {
      std::fprintf(stderr, "idle_client: no progress connecting for 10 s\n");
      for (auto& [c, st] : connecting) PQfinish(c);
      failed += connecting.size();
      connecting.clear();
      break;
    }
    std::deque<std::pair<PGconn*, PostgresPollingStatusType>> still;
    for (size_t i = 0; i < connecting.size(); ++i) {
      auto [c, st] = connecting[i];
      if (fds[i].revents == 0) {
        still.emplace_back(c, st);
        continue;
      }
      st = PQconnectPoll(c);
      if (st == PGRES_POLLING_OK) {
        done.push_back(c);
      } else if (st == PGRES_POLLING_FAILED) {
        if (failed == 0) std::fprintf(stderr, "%s", PQerrorMessage(c));
        PQfinish(c);
        ++failed;
      } else {
        still.emplace_back(c, st);
      }
    }
    connecting.swap(still);
  }
  return done;
}

int Run(const Options& o) {
  size_t failed = 0;
  std::vector<PGconn*> conns = ConnectAll(o, failed);
  std::vector<PGconn*> ready;
  for (PGconn* c : conns) {
    PGresult* r = PQexec(c, "SELECT 1");
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (ok) {
      ready.push_back(c);
    } else {
      if (failed == 0) std::fprintf(stderr, "%s", PQerrorMessage(c));
      PQfinish(c);
      ++failed;
    }
  }
  std::printf("ready %zu %zu\n", ready.size(), failed);
  std::fflush(stdout);
  char buf[256];
  while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  for (PGconn* c : ready) PQfinish(c);
  return 0;
}

}  // namespace
}  // namespace shardgate::bench

int main(int argc, char** argv) {
  shardgate::bench::Options o;
  if (!shardgate::bench::ParseArgs(argc, argv, o)) {
    std::fprintf(stderr, "usage: idle_client --conninfo CONNINFO --count N (1..100000)\n");
    return 2;
  }
  return shardgate::bench::Run(o);
}
