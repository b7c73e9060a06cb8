// Positive tests of LoadString/LoadFile: every key is read into Config, and every default holds.
#include "conf/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/status_matchers.h"

namespace shardgate::conf {
namespace {

using ::shardgate::testing::StatusIs;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMinimal[] = R"(
users: [{name: app, password: pw}]
databases:
  app:
    shards: [{name: s0, primary: {}}]
)";

TEST(ConfigTest, MinimalConfigGetsEveryDefault) {
  ASSERT_OK_AND_ASSIGN(auto config, LoadString(kMinimal, "min.yaml"));
  const Config defaults;
  EXPECT_EQ(config->path, "min.yaml");
  EXPECT_EQ(config->listen.host, defaults.listen.host);
  EXPECT_EQ(config->listen.port, 6432);
  EXPECT_EQ(config->workers, 0);
  EXPECT_TRUE(config->admin.users.empty());
  EXPECT_FALSE(config->admin.http.has_value());
  EXPECT_FALSE(config->tls.Enabled());
  EXPECT_EQ(config->server_tls.sslmode, SslMode::kDisable);
  EXPECT_FALSE(config->server_tls.Enabled());
  ASSERT_EQ(config->users.size(), 1u);
  const UserConfig& user = config->users[0];
  EXPECT_EQ(user.name, "app");
  EXPECT_EQ(user.password, "pw");
  EXPECT_EQ(user.pool_mode, PoolMode::kTransaction);
  EXPECT_EQ(user.auth, AuthMethod::kScram);
  EXPECT_EQ(user.max_connections, 0);
  EXPECT_EQ(user.mark.file, "min.yaml");
  EXPECT_EQ(user.mark.line, 2);

  const DatabaseConfig* db = config->FindDatabase("app");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->name, "app");
  EXPECT_EQ(db->pool_size, 20);
  EXPECT_EQ(db->max_prepared_statements, 200);
  EXPECT_EQ(db->read_from, ReadFrom::kReplicas);
  EXPECT_EQ(db->replica_balance, ReplicaBalance::kRoundRobin);
  EXPECT_EQ(db->max_replica_lag, milliseconds(5000));
  EXPECT_EQ(db->health_check_interval, milliseconds(1000));
  EXPECT_EQ(db->health_check_timeout, milliseconds(2000));
  EXPECT_FALSE(db->default_shard.has_value());
  EXPECT_TRUE(db->routers.empty());
  EXPECT_TRUE(db->tables.empty());
  EXPECT_FALSE(db->Sharded());
  ASSERT_EQ(db->shards.size(), 1u);
  const Endpoint& primary = db->shards[0].primary;
  EXPECT_EQ(primary.host, "127.0.0.1");
  EXPECT_EQ(primary.port, 5432);
  EXPECT_EQ(primary.dbname, "app");  // defaults to the logical name
  EXPECT_EQ(primary.user, "");
  EXPECT_EQ(primary.password, "");
  EXPECT_EQ(primary.zone, "");
  EXPECT_TRUE(db->shards[0].replicas.empty());
  EXPECT_EQ(db->FindShard("s0"), &db->shards[0]);
  EXPECT_EQ(db->FindShard("s1"), nullptr);

  const Timeouts t;
  EXPECT_EQ(config->timeouts.connect, t.connect);
  EXPECT_EQ(config->timeouts.query, milliseconds(0));
  EXPECT_EQ(config->timeouts.client_idle, milliseconds(0));
  EXPECT_EQ(config->timeouts.idle_in_transaction, milliseconds(0));
  EXPECT_EQ(config->timeouts.server_idle, milliseconds(600000));
  EXPECT_EQ(config->timeouts.client_login, milliseconds(15000));
  EXPECT_EQ(config->timeouts.client_message, milliseconds(30000));
  EXPECT_EQ(config->timeouts.shutdown, milliseconds(30000));
  EXPECT_EQ(config->limits.max_client_conn, 10000);
  EXPECT_EQ(config->limits.max_message_size, 256u << 20);
  EXPECT_EQ(config->FindDatabase("other"), nullptr);
  EXPECT_EQ(config->FindUser("nobody"), nullptr);
}

constexpr char kFull[] = R"(
listen: {host: 0.0.0.0, port: 7000}
workers: 3
admin:
  users: [boss]
  http: {host: 127.0.0.2, port: 9100}
tls: {cert: a.crt, key: a.key}
users:
  - {name: app, password: pw, pool_mode: session, auth: md5, max_connections: 50}
  - {name: boss, password: "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"}
  - {name: guest, auth: trust}
databases:
  Shop:
    pool_size: 7
    max_prepared_statements: 0
    read_from: any
    replica_balance: least_outstanding
    max_replica_lag: 250ms
    health_check_interval: 2s
    health_check_timeout: 700ms
    default_shard: s1
    shards:
      - name: s0
        primary: {host: db0, port: 5500, dbname: shop0, user: u0, password: p0, zone: z0}
        replicas:
          - {host: db0r, port: 5501, zone: z1}
          - {host: db0r2}
      - name: s1
        primary: {host: db1}
    routers:
      r1: {type: modulo, shards: [s0, s1], hash: postgres}
      r2: {type: my_custom_router, anything: [1, 2, {x: y}]}
    tables:
      Orders: {key: user_id, router: r1}
      public.items: {key: id, router: r2, reference: false}
      countries: {reference: true}
  plain:
    read_from: primary
    shards: [{name: only, primary: {port: 5600}}]
timeouts:
  connect: 2s
  query: 1m
  client_idle: 1h
  idle_in_transaction: 90s
  server_idle: 120000
  client_login: 3s
  client_message: 4s
  shutdown: 10s
limits: {max_client_conn: 5, max_message_size: 65536}
)";

TEST(ConfigTest, EveryKeyIsRead) {
  ASSERT_OK_AND_ASSIGN(auto config, LoadString(kFull, "full.yaml"));
  EXPECT_EQ(config->listen.host, "0.0.0.0");
  EXPECT_EQ(config->listen.port, 7000);
  EXPECT_EQ(config->workers, 3);
  EXPECT_THAT(config->admin.users, ElementsAre("boss"));
  ASSERT_TRUE(config->admin.http.has_value());
  EXPECT_EQ(config->admin.http->host, "127.0.0.2");
  EXPECT_EQ(config->admin.http->port, 9100);
  EXPECT_TRUE(config->tls.Enabled());
  EXPECT_EQ(config->tls.cert, "a.crt");
  EXPECT_EQ(config->tls.key, "a.key");
  EXPECT_TRUE(config->IsAdmin("boss"));
  EXPECT_FALSE(config->IsAdmin("app"));

  const UserConfig* app = config->FindUser("app");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->pool_mode, PoolMode::kSession);
  EXPECT_EQ(app->auth, AuthMethod::kMd5);
  EXPECT_EQ(app->max_connections, 50);
  EXPECT_EQ(config->FindUser("boss")->password.substr(0, 14), "SCRAM-SHA-256$");
  EXPECT_EQ(config->FindUser("guest")->auth, AuthMethod::kTrust);
  EXPECT_EQ(config->FindUser("guest")->password, "");

  const DatabaseConfig* shop = config->FindDatabase("Shop");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(config->FindDatabase("shop"), nullptr);  // database names are case-sensitive
  EXPECT_EQ(shop->pool_size, 7);
  EXPECT_EQ(shop->max_prepared_statements, 0);
  EXPECT_EQ(shop->read_from, ReadFrom::kAny);
  EXPECT_EQ(shop->replica_balance, ReplicaBalance::kLeastOutstanding);
  EXPECT_EQ(shop->max_replica_lag, milliseconds(250));
  EXPECT_EQ(shop->health_check_interval, milliseconds(2000));
  EXPECT_EQ(shop->health_check_timeout, milliseconds(700));
  EXPECT_EQ(shop->default_shard, "s1");
  EXPECT_TRUE(shop->Sharded());
  ASSERT_EQ(shop->shards.size(), 2u);
  const ShardConfig& s0 = shop->shards[0];
  EXPECT_EQ(s0.name, "s0");
  EXPECT_EQ(s0.primary.host, "db0");
  EXPECT_EQ(s0.primary.port, 5500);
  EXPECT_EQ(s0.primary.dbname, "shop0");
  EXPECT_EQ(s0.primary.user, "u0");
  EXPECT_EQ(s0.primary.password, "p0");
  EXPECT_EQ(s0.primary.zone, "z0");
  ASSERT_EQ(s0.replicas.size(), 2u);
  EXPECT_EQ(s0.replicas[0].host, "db0r");
  EXPECT_EQ(s0.replicas[0].port, 5501);
  EXPECT_EQ(s0.replicas[0].dbname, "Shop");
  EXPECT_EQ(s0.replicas[0].zone, "z1");
  EXPECT_EQ(s0.replicas[1].port, 5432);
  EXPECT_EQ(s0.replicas[1].mark.line, 27);
  EXPECT_EQ(shop->shards[1].primary.host, "db1");
  EXPECT_EQ(shop->shards[1].primary.dbname, "Shop");

  ASSERT_EQ(shop->routers.size(), 2u);
  const RouterConfig& r1 = shop->routers.at("r1");
  EXPECT_EQ(r1.name, "r1");
  EXPECT_EQ(r1.type, "modulo");
  EXPECT_EQ(r1.mark.line, 31);
  ASSERT_NE(r1.settings.Find("type"), nullptr);
  ASSERT_NE(r1.settings.Find("hash"), nullptr);
  EXPECT_EQ(r1.settings.Find("hash")->scalar, "postgres");
  ASSERT_NE(r1.settings.Find("shards"), nullptr);
  EXPECT_EQ(r1.settings.Find("shards")->list.size(), 2u);
  const RouterConfig& r2 = shop->routers.at("r2");
  EXPECT_EQ(r2.type, "my_custom_router");  // conf/ does not judge router types
  ASSERT_NE(r2.settings.Find("anything"), nullptr);
  EXPECT_EQ(r2.settings.Find("anything")->list.size(), 3u);

  ASSERT_EQ(shop->tables.size(), 3u);
  ASSERT_EQ(shop->tables.count("orders"), 1u);  // lower-cased key
  const TableConfig& orders = shop->tables.at("orders");
  EXPECT_EQ(orders.name, "Orders");  // as written
  EXPECT_EQ(orders.key, "user_id");
  EXPECT_EQ(orders.router, "r1");
  EXPECT_FALSE(orders.reference);
  EXPECT_EQ(orders.mark.line, 34);
  EXPECT_EQ(orders.mark.column, 7);
  const TableConfig& items = shop->tables.at("public.items");
  EXPECT_EQ(items.router, "r2");
  EXPECT_FALSE(items.reference);
  const TableConfig& countries = shop->tables.at("countries");
  EXPECT_TRUE(countries.reference);
  EXPECT_EQ(countries.key, "");
  EXPECT_EQ(countries.router, "");

  const DatabaseConfig* plain = config->FindDatabase("plain");
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->read_from, ReadFrom::kPrimary);
  EXPECT_FALSE(plain->Sharded());
  EXPECT_EQ(plain->shards[0].primary.port, 5600);
  EXPECT_EQ(plain->shards[0].primary.dbname, "plain");

  EXPECT_EQ(config->timeouts.connect, milliseconds(2000));
  EXPECT_EQ(config->timeouts.query, milliseconds(60000));
  EXPECT_EQ(config->timeouts.client_idle, milliseconds(3600000));
  EXPECT_EQ(config->timeouts.idle_in_transaction, milliseconds(90000));
  EXPECT_EQ(config->timeouts.server_idle, milliseconds(120000));
  EXPECT_EQ(config->timeouts.client_login, milliseconds(3000));
  EXPECT_EQ(config->timeouts.client_message, milliseconds(4000));
  EXPECT_EQ(config->timeouts.shutdown, milliseconds(10000));
  EXPECT_EQ(config->limits.max_client_conn, 5);
  EXPECT_EQ(config->limits.max_message_size, 65536u);
}

// Durations: value as written -> milliseconds.
class DurationTest : public ::testing::TestWithParam<std::pair<const char*, int64_t>> {};

TEST_P(DurationTest, Parses) {
  std::string yaml = std::string(kMinimal) + "timeouts: {query: " + GetParam().first + "}\n";
  ASSERT_OK_AND_ASSIGN(auto config, LoadString(yaml));
  EXPECT_EQ(config->timeouts.query.count(), GetParam().second);
}

INSTANTIATE_TEST_SUITE_P(ConfDurations, DurationTest,
                         ::testing::Values(std::pair<const char*, int64_t>{"5s", 5000},
                                           std::pair{"250ms", 250}, std::pair{"2m", 120000},
                                           std::pair{"1h", 3600000}, std::pair{"1500", 1500},
                                           std::pair{"0", 0}, std::pair{"0s", 0},
                                           std::pair{"\"10s\"", 10000}));

// Every mode by its libpq name; the files only need to be readable here (/dev/null is), the
// daemon parses them at start.
TEST(ConfigTest, ServerTlsIsRead) {
  ASSERT_OK_AND_ASSIGN(
      auto config,
      LoadString(std::string(kMinimal) +
                     "server_tls: {sslmode: verify-full, root_cert: /dev/null, cert: /dev/null, "
                     "key: /dev/null}\n",
                 "tls.yaml"));
  EXPECT_EQ(config->server_tls.sslmode, SslMode::kVerifyFull);
  EXPECT_TRUE(config->server_tls.Verifies());
  EXPECT_EQ(config->server_tls.root_cert, "/dev/null");
  EXPECT_EQ(config->server_tls.cert, "/dev/null");
  EXPECT_EQ(config->server_tls.key, "/dev/null");
  for (auto [name, mode] : std::vector<std::pair<std::string, SslMode>>{
           {"disable", SslMode::kDisable},
           {"prefer", SslMode::kPrefer},
           {"require", SslMode::kRequire},
           {"verify-ca", SslMode::kVerifyCa},
           {"verify-full", SslMode::kVerifyFull}}) {
    ASSERT_OK_AND_ASSIGN(auto c, LoadString(std::string(kMinimal) + "server_tls: {sslmode: " +
                                                name + ", root_cert: /dev/null}\n"));
    EXPECT_EQ(c->server_tls.sslmode, mode) << name;
    EXPECT_EQ(SslModeName(mode), name);
  }
}

TEST(ConfigTest, SingleShardWithoutRoutersIsAPlainProxy) {
  ASSERT_OK_AND_ASSIGN(auto config, LoadString(kMinimal));
  EXPECT_FALSE(config->FindDatabase("app")->Sharded());
}

TEST(ConfigTest, ProxyZone) {
  ASSERT_OK_AND_ASSIGN(auto none, LoadString(kMinimal));
  EXPECT_EQ(none->zone, "");
  ASSERT_OK_AND_ASSIGN(auto zoned, LoadString(std::string(kMinimal) + "zone: eu-1a\n"));
  EXPECT_EQ(zoned->zone, "eu-1a");
}

TEST(ConfigTest, NullSectionsMeanDefaults) {
  std::string yaml = std::string(kMinimal) + "tls:\ntimeouts:\nlimits:\nadmin:\n";
  ASSERT_OK_AND_ASSIGN(auto config, LoadString(yaml));
  EXPECT_FALSE(config->tls.Enabled());
  EXPECT_EQ(config->timeouts.shutdown, milliseconds(30000));
}

TEST(ConfigTest, RateLimitsOfUsersAndDatabases) {
  auto config = LoadString(R"(
users:
  - {name: app, password: pw, rate_limit: {queries_per_second: 100}}
  - {name: bulk, password: pw,
     rate_limit: {queries_per_second: 5, burst: 20, mode: queue, max_wait: 250ms}}
  - {name: free, password: pw}
databases:
  app:
    shards: [{name: s0, primary: {}}]
    rate_limit: {queries_per_second: 1000, burst: 50}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto& app = config.value()->FindUser("app")->rate_limit;
  ASSERT_TRUE(app.has_value());
  EXPECT_EQ(app->queries_per_second, 100);
  EXPECT_EQ(app->burst, 100);  // defaults to the rate
  EXPECT_EQ(app->mode, RateLimitConfig::Mode::kError);
  EXPECT_EQ(app->max_wait, milliseconds(1000));
  const auto& bulk = config.value()->FindUser("bulk")->rate_limit;
  ASSERT_TRUE(bulk.has_value());
  EXPECT_EQ(bulk->burst, 20);
  EXPECT_EQ(bulk->mode, RateLimitConfig::Mode::kQueue);
  EXPECT_EQ(bulk->max_wait, milliseconds(250));
  EXPECT_FALSE(config.value()->FindUser("free")->rate_limit.has_value());
  const auto& db = config.value()->FindDatabase("app")->rate_limit;
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->queries_per_second, 1000);
  EXPECT_EQ(db->burst, 50);
}

TEST(ConfigTest, LoadFileReadsAndNamesTheFile) {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("h2_conf_test_" + std::to_string(getpid()));
  {
    std::ofstream out(path);
    out << kMinimal << "workers: -1\n";
  }
  auto config = LoadFile(path.string());
  std::filesystem::remove(path);
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr(path.string() + ":6:10: 'workers' must be between 0")));
}

TEST(ConfigTest, LoadFileOfADirectoryIsAnError) {
  std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_THAT(LoadFile(dir), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr(dir + ":1:1: cannot read")));
}

TEST(ConfigTest, LoadFileMissingFileIsAnError) {
  EXPECT_THAT(LoadFile("/nonexistent/shardgate.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/nonexistent/shardgate.yaml:1:1: cannot open")));
}

}  // namespace
}  // namespace shardgate::conf
