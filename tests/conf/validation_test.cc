// Every validation error: a table of (YAML, expected "line:column", message), plus the checks
// that all problems of one file are reported together, in file order.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "conf/config.h"
#include "tests/support/status_matchers.h"

namespace shardgate::conf {
namespace {

using ::shardgate::testing::StatusIs;
using ::testing::HasSubstr;

// Four valid lines that cases extend (so their own lines start at 5) or replace.
constexpr char kBase[] =
    "users: [{name: app, password: pw}]\n"
    "databases:\n"
    "  app:\n"
    "    shards: [{name: s0, primary: {}}]\n";

struct ErrorCase {
  const char* name;
  std::string yaml;
  const char* where;    // "line:column"
  const char* message;  // substring of the message at that position
};

// Names the case in failure output instead of dumping its bytes.
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

std::string Base(std::string_view extra) { return std::string(kBase) + std::string(extra); }

// A database `app` with two shards, whose extra lines (indented 4) start at line 7.
std::string Sharded(std::string_view extra) {
  return std::string(
             "users: [{name: app, password: pw}]\n"
             "databases:\n"
             "  app:\n"
             "    shards:\n"
             "      - {name: s0, primary: {port: 5432}}\n"
             "      - {name: s1, primary: {port: 5433}}\n") +
         std::string(extra);
}

std::vector<ErrorCase> Cases() {
  return {
      // Unknown keys, with a suggestion when close.
      {"UnknownTopLevelKey", "listn: {port: 1}\n" + Base(""), "1:1",
       "unknown key 'listn' in the configuration; did you mean 'listen'?"},
      {"UnknownKeyFarFromAny", Base("frobnicate: 1\n"), "5:1", "unknown key 'frobnicate'"},
      {"UnknownUserKey", "users: [{name: app, pasword: pw}]\n" + Base("").substr(35), "1:21",
       "unknown key 'pasword' in user; did you mean 'password'?"},
      {"UnknownDatabaseKey", Base("    poolsize: 3\n"), "5:5",
       "unknown key 'poolsize' in database 'app'; did you mean 'pool_size'?"},
      // rate_limit: on a user and on a database.
      {"RateLimitUnknownKey", Base("    rate_limit: {queries_per_second: 5, brust: 9}\n"), "5:41",
       "unknown key 'brust' in database 'app' rate_limit; did you mean 'burst'?"},
      {"RateLimitNeedsRate", Base("    rate_limit: {burst: 9}\n"), "5:17",
       "database 'app' rate_limit: missing required key 'queries_per_second'"},
      {"RateLimitRateNotPositive", Base("    rate_limit: {queries_per_second: 0}\n"), "5:38",
       "'queries_per_second' must be between 1"},
      {"RateLimitBurstNotPositive",
       Base("    rate_limit: {queries_per_second: 5, burst: -1}\n"), "5:48",
       "'burst' must be between 1"},
      {"RateLimitBadMode", Base("    rate_limit: {queries_per_second: 5, mode: wait}\n"), "5:47",
       "unknown mode 'wait' (expected error, queue)"},
      {"RateLimitZeroWait",
       Base("    rate_limit: {queries_per_second: 5, mode: queue, max_wait: 0}\n"), "5:64",
       "'max_wait' must be greater than 0"},
      {"RateLimitNotAMap", Base("    rate_limit: 100\n"), "5:17", "expected a map"},
      {"UserRateLimitUnknownKey",
       "users: [{name: app, password: pw, rate_limit: {queries_per_second: 1, qps: 2}}]\n" +
           Base("").substr(35),
       "1:71", "unknown key 'qps' in user rate_limit"},
      {"UnknownShardKey", Sharded("      - {name: s2, primary: {}, replica: []}\n"), "7:33",
       "unknown key 'replica' in shard; did you mean 'replicas'?"},
      {"UnknownEndpointKey", Sharded("      - {name: s2, primary: {hots: x}}\n"), "7:30",
       "unknown key 'hots' in primary; did you mean 'host'?"},
      {"UnknownTableKey",
       Sharded("    routers: {r: {type: modulo}}\n    tables: {t: {key: id, router: r, "
               "refrence: true}}\n"),
       "8:38", "unknown key 'refrence' in table 't'; did you mean 'reference'?"},
      {"UnknownTimeoutKey", Base("timeouts: {qeury: 1s}\n"), "5:12",
       "unknown key 'qeury' in timeouts; did you mean 'query'?"},
      {"UnknownLimitKey", Base("limits: {max_clients: 1}\n"), "5:10",
       "unknown key 'max_clients' in limits"},
      {"UnknownAdminKey", Base("admin: {user: [app]}\n"), "5:9",
       "unknown key 'user' in admin; did you mean 'users'?"},
      {"UnknownTlsKey", Base("tls: {cert: a, key: b, ca: c}\n"), "5:24", "unknown key 'ca' in tls"},
      {"UnknownListenKey", Base("listen: {prot: 1}\n"), "5:10",
       "unknown key 'prot' in listen; did you mean 'port'?"},
      // Wrong types.
      {"WorkersNotInteger", Base("workers: many\n"), "5:10", "'workers': expected an integer"},
      {"PortNotInteger", Base("listen: {port: 64.5}\n"), "5:16", "'port': expected an integer"},
      {"NameNotString", "users: [{name: [a], password: pw}]\n" + Base("").substr(35), "1:16",
       "'name': expected a string"},
      {"ListenNotMap", Base("listen: 6432\n"), "5:9", "'listen': expected a map"},
      {"UsersNotList", "users: {name: app}\n" + Base("").substr(35), "1:8",
       "'users': expected a list"},
      {"UserNotMap", "users: [app]\n" + Base("").substr(35), "1:9", "expected a map for user"},
      {"ReferenceNotBool", Sharded("    tables: {c: {reference: maybe}}\n"), "7:29",
       "'reference': expected true or false"},
      {"DurationMalformed", Base("timeouts: {query: 5 seconds}\n"), "5:19",
       "'query': expected a duration"},
      {"DurationNegative", Base("timeouts: {query: -5s}\n"), "5:19",
       "'query': expected a duration"},
      {"DurationUnknownUnit", Base("timeouts: {query: 5d}\n"), "5:19",
       "'query': expected a duration"},
      {"DatabaseNotMap", "users: [{name: app, password: pw}]\ndatabases:\n  app: 5\n", "3:8",
       "expected a map for database 'app'"},
      // Ports.
      {"ListenPortTooHigh", Base("listen: {port: 70000}\n"), "5:16",
       "'port' must be between 1 and 65535, got 70000"},
      {"PrimaryPortZero", Sharded("      - {name: s2, primary: {port: 0}}\n"), "7:36",
       "'port' must be between 1 and 65535, got 0"},
      {"ReplicaPortNegative", Sharded("      - {name: s2, primary: {}, replicas: [{port: -1}]}\n"),
       "7:51", "'port' must be between 1 and 65535, got -1"},
      {"AdminHttpPortTooHigh", Base("admin: {http: {port: 65536}}\n"), "5:22",
       "'port' must be between 1 and 65535, got 65536"},
      {"AdminHttpSameAsListen",
       Base("listen: {port: 7000}\nadmin: {http: {host: 127.0.0.1, port: 7000}}\n"), "6:15",
       "admin http uses the same address as listen"},
      // Duplicates.
      {"DuplicateUser",
       "users:\n  - {name: app, password: a}\n  - {name: app, password: b}\n" + Base("").substr(35),
       "3:5", "duplicate user 'app' (first at line 2)"},
      {"DuplicateShard", Sharded("      - {name: s0, primary: {}}\n"), "7:9",
       "duplicate shard 's0' in database 'app' (first at line 5)"},
      {"DuplicateTableCaseInsensitive",
       Sharded("    tables:\n      t: {reference: true}\n      T: {reference: true}\n"), "9:7",
       "duplicate table 'T' (same as 't' at line 8)"},
      {"DuplicateYamlKey", Base("workers: 1\nworkers: 2\n"), "6:1",
       "duplicate key 'workers' (first at line 5)"},
      // Databases and shards.
      {"DatabaseWithoutShards", "users: [{name: app, password: pw}]\ndatabases:\n  app: {}\n",
       "3:3", "database 'app' has no shards"},
      {"DatabaseWithEmptyShards",
       "users: [{name: app, password: pw}]\ndatabases:\n  app: {shards: []}\n", "3:3",
       "database 'app' has no shards"},
      {"DatabaseNull", "users: [{name: app, password: pw}]\ndatabases:\n  app:\n", "3:3",
       "database 'app' has no shards"},
      {"ShardWithoutName", Sharded("      - {primary: {}}\n"), "7:9",
       "shard: missing required key 'name'"},
      {"ShardWithEmptyName", Sharded("      - {name: '', primary: {}}\n"), "7:16",
       "'name' must not be empty"},
      {"ShardWithoutPrimary", Sharded("      - {name: s2}\n"), "7:9",
       "shard: missing required key 'primary'"},
      {"EmptyHost", Sharded("      - {name: s2, primary: {host: ''}}\n"), "7:36",
       "'host' must not be empty"},
      {"ReservedDatabaseName",
       "users: [{name: app, password: pw}]\ndatabases:\n  shardgate:\n    shards: [{name: s0, "
       "primary: {}}]\n",
       "3:3", "database name 'shardgate' is reserved"},
      {"NegativePoolSize", Base("    pool_size: -1\n"), "5:16",
       "'pool_size' must be at least 1, got -1"},
      {"ZeroPoolSize", Base("    pool_size: 0\n"), "5:16", "'pool_size' must be at least 1"},
      {"NegativeMaxPreparedStatements", Base("    max_prepared_statements: -5\n"), "5:30",
       "'max_prepared_statements' must be at least 0, got -5"},
      {"NegativePipelineReads", Base("    pipeline_reads: -1\n"), "5:21",
       "'pipeline_reads' must be between 0 and 64, got -1"},
      {"HugePipelineReads", Base("    pipeline_reads: 65\n"), "5:21",
       "'pipeline_reads' must be between 0 and 64, got 65"},
      {"UnknownReadFrom", Base("    read_from: replica\n"), "5:16",
       "unknown read_from 'replica' (expected replicas, primary, any); did you mean 'replicas'?"},
      {"UnknownReplicaBalance", Base("    replica_balance: random\n"), "5:22",
       "unknown replica_balance 'random'"},
      {"ZeroHealthCheckInterval", Base("    health_check_interval: 0\n"), "5:28",
       "'health_check_interval' must be greater than 0"},
      {"ZeroHealthCheckTimeout", Base("    health_check_timeout: 0\n"), "5:27",
       "'health_check_timeout' must be greater than 0"},
      {"DefaultShardUnknown", Sharded("    default_shard: s3\n"), "7:20",
       "'default_shard' names unknown shard 's3' in database 'app'"},
      {"DefaultShardTypo", Sharded("    default_shard: S1\n"), "7:20",
       "'default_shard' names unknown shard 'S1' in database 'app'; did you mean 's1'?"},
      // Routers: only `type` is conf/'s business.
      {"RouterWithoutType", Sharded("    routers: {r: {shards: [s0]}}\n"), "7:18",
       "router 'r': missing required key 'type'"},
      {"RouterWithEmptyType", Sharded("    routers: {r: {type: ''}}\n"), "7:25",
       "router 'r': 'type' must be a router name"},
      {"RouterTypeNotString", Sharded("    routers: {r: {type: [a]}}\n"), "7:25",
       "router 'r': 'type' must be a router name"},
      {"RouterNotMap", Sharded("    routers: {r: modulo}\n"), "7:18",
       "router 'r': expected a map with a 'type'"},
      // Tables.
      {"TableUnknownRouter",
       Sharded("    routers: {by_user: {type: modulo}}\n    tables: {t: {key: id, router: "
               "by_usr}}\n"),
       "8:35", "table 't' names unknown router 'by_usr'; did you mean 'by_user'?"},
      {"TableRouterWithoutRouters", Sharded("    tables: {t: {key: id, router: r}}\n"), "7:35",
       "table 't' names unknown router 'r'"},
      {"TableKeyAndReference",
       Sharded("    routers: {r: {type: modulo}}\n    tables: {t: {key: id, reference: true}}\n"),
       "8:14", "table 't' has both a key and reference: true"},
      {"TableRouterAndReference",
       Sharded("    routers: {r: {type: modulo}}\n    tables: {t: {router: r, reference: true}}\n"),
       "8:14", "table 't' has both a router and reference: true"},
      {"GeneratedKeyOnReferenceTable",
       Sharded("    routers: {r: {type: modulo}}\n    tables: {t: {reference: true, "
               "generated_key: true}}\n"),
       "8:50", "table 't': generated_key needs a sharded table (a key and a router), not "
               "reference: true"},
      {"ShardedTableWithoutKey",
       Sharded("    routers: {r: {type: modulo}}\n    tables: {t: {router: r}}\n"), "8:14",
       "table 't' is sharded but has no key"},
      {"ShardedTableWithoutRouter",
       Sharded("    routers: {r: {type: modulo}}\n    tables: {t: {key: id}}\n"), "8:14",
       "table 't' is sharded but names no router"},
      {"TableNotMap", Sharded("    tables: {t: id}\n"), "7:17", "expected a map for table 't'"},
      // Users and admin.
      {"UnknownPoolMode",
       "users: [{name: app, password: pw, pool_mode: statement}]\n" + Base("").substr(35), "1:46",
       "unknown pool_mode 'statement' (expected transaction, session)"},
      {"UnknownAuth", "users: [{name: app, password: pw, auth: scram}]\n" + Base("").substr(35),
       "1:41", "unknown auth 'scram' (expected scram-sha-256, md5, trust)"},
      {"AuthTypo", "users: [{name: app, password: pw, auth: md4}]\n" + Base("").substr(35), "1:41",
       "unknown auth 'md4' (expected scram-sha-256, md5, trust); did you mean 'md5'?"},
      {"NegativeMaxConnections",
       "users: [{name: app, password: pw, max_connections: -2}]\n" + Base("").substr(35), "1:52",
       "'max_connections' must be at least 0, got -2"},
      {"UserWithoutName",
       "users: [{password: pw}, {name: app, password: pw}]\n" + Base("").substr(35), "1:9",
       "user: missing required key 'name'"},
      {"UserWithoutPassword", "users: [{name: app}]\n" + Base("").substr(35), "1:9",
       "user 'app' needs a password (or auth: trust)"},
      {"Md5WithScramVerifier",
       "users: [{name: app, password: 'SCRAM-SHA-256$4096:c2FsdA==$a:b', auth: md5}]\n" +
           Base("").substr(35),
       "1:72", "user 'app': auth md5 cannot use a SCRAM verifier"},
      {"ScramWithMd5Hash",
       "users: [{name: app, password: md5a3556571e93b0d20722ba62be61e8c2d}]\n" +
           Base("").substr(35),
       "1:9", "user 'app': auth scram-sha-256 cannot use an md5 hash"},
      {"AdminUserNotInUsers", Base("admin: {users: [app, root]}\n"), "5:22",
       "admin user 'root' is not defined in users:"},
      {"NoUsers", "databases:\n  app:\n    shards: [{name: s0, primary: {}}]\n", "1:1",
       "no users configured"},
      {"EmptyUsers", "users: []\n" + Base("").substr(35), "1:8", "no users configured"},
      {"NoDatabases", "users: [{name: app, password: pw}]\n", "1:1", "no databases configured"},
      {"EmptyFile", "", "1:1", "no users configured"},
      {"TopLevelNotMap", "- a\n- b\n", "1:1", "expected a map for the configuration"},
      // TLS.
      {"TlsCertWithoutKey", Base("tls: {cert: server.crt}\n"), "5:6",
       "tls: 'cert' is set but 'key' is missing"},
      {"TlsKeyWithoutCert", Base("tls: {key: server.key}\n"), "5:6",
       "tls: 'key' is set but 'cert' is missing"},
      // TLS to the servers.
      {"UnknownServerTlsKey", Base("server_tls: {sslmode: require, ca: x}\n"), "5:32",
       "unknown key 'ca' in server_tls"},
      {"BadSslMode", Base("server_tls: {sslmode: verify}\n"), "5:23", "unknown sslmode 'verify'"},
      {"VerifyFullWithoutRootCert", Base("server_tls: {sslmode: verify-full}\n"), "5:13",
       "server_tls: sslmode verify-full needs 'root_cert'"},
      {"VerifyCaWithoutRootCert", Base("server_tls: {sslmode: verify-ca}\n"), "5:13",
       "server_tls: sslmode verify-ca needs 'root_cert'"},
      {"RootCertMissingFile",
       Base("server_tls: {sslmode: verify-ca, root_cert: /nonexistent/ca.crt}\n"), "5:45",
       "server_tls: cannot read 'root_cert' file /nonexistent/ca.crt: No such file or directory"},
      {"RootCertIsADirectory", Base("server_tls: {sslmode: verify-ca, root_cert: /}\n"), "5:45",
       "server_tls: cannot read 'root_cert' file /: is a directory"},
      {"ServerTlsCertWithoutKey", Base("server_tls: {sslmode: require, cert: /dev/null}\n"),
       "5:13", "server_tls: 'cert' is set but 'key' is missing"},
      {"ServerTlsKeyWithoutCert", Base("server_tls: {sslmode: require, key: /dev/null}\n"),
       "5:13", "server_tls: 'key' is set but 'cert' is missing"},
      {"ServerTlsNotAMap", Base("server_tls: verify-full\n"), "5:13",
       "'server_tls': expected a map"},
      // Timeouts and limits.
      {"ZeroConnectTimeout", Base("timeouts: {connect: 0}\n"), "5:21",
       "timeouts 'connect' must be greater than 0"},
      {"MaxClientConnZero", Base("limits: {max_client_conn: 0}\n"), "5:27",
       "'max_client_conn' must be at least 1, got 0"},
      {"MaxMessageSizeTooSmall", Base("limits: {max_message_size: 100}\n"), "5:28",
       "'max_message_size' must be between 1024 and 1073741824, got 100"},
      {"WorkersNegative", Base("workers: -1\n"), "5:10",
       "'workers' must be between 0 and 1024, got -1"},
      // YAML syntax.
      {"SyntaxError", Base("limits: {max_client_conn: 1\n"), "6:1", ""},
      {"TabIndentation", Base("timeouts:\n\tquery: 1s\n"), "6:7", ""},
  };
}

class ValidationTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ValidationTest, ReportsPositionAndMessage) {
  const ErrorCase& c = GetParam();
  auto config = LoadString(c.yaml, "v.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr(std::string("v.yaml:") + c.where + ": " + c.message)))
      << c.yaml;
}

INSTANTIATE_TEST_SUITE_P(ConfErrors, ValidationTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ValidationTest, BaseIsValid) {
  EXPECT_OK(LoadString(Base(""), "v.yaml"));
  EXPECT_OK(LoadString(Sharded(""), "v.yaml"));
}

TEST(ValidationTest, AllProblemsAreReportedInFileOrder) {
  std::string yaml =
      "listen: {port: 0}\n"                               // 1
      "users:\n"                                          // 2
      "  - {name: app, password: pw, pool_mode: nope}\n"  // 3
      "  - {name: app, password: pw}\n"                   // 4
      "databases:\n"                                      // 5
      "  app:\n"                                          // 6
      "    pool_size: -3\n"                               // 7
      "    shards: []\n"                                  // 8
      "tls: {cert: c}\n"                                  // 9
      "bogus: 1\n";                                       // 10
  auto config = LoadString(yaml, "many.yaml");
  ASSERT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<std::string> lines = absl::StrSplit(config.status().message(), '\n');
  ASSERT_EQ(lines.size(), 7u) << config.status().message();
  EXPECT_THAT(lines[0], HasSubstr("many.yaml:1:16: 'port'"));
  EXPECT_THAT(lines[1], HasSubstr("many.yaml:3:42: unknown pool_mode"));
  EXPECT_THAT(lines[2], HasSubstr("many.yaml:4:5: duplicate user"));
  EXPECT_THAT(lines[3], HasSubstr("many.yaml:6:3: database 'app' has no shards"));
  EXPECT_THAT(lines[4], HasSubstr("many.yaml:7:16: 'pool_size'"));
  EXPECT_THAT(lines[5], HasSubstr("many.yaml:9:6: tls:"));
  EXPECT_THAT(lines[6], HasSubstr("many.yaml:10:1: unknown key 'bogus'"));
}

TEST(ValidationTest, ErrorsNameTheGivenFile) {
  auto config = LoadString("workers: x\n", "/etc/shardgate/prod.yaml");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("/etc/shardgate/prod.yaml:1:10: 'workers'")));
  EXPECT_THAT(LoadString("a: [\n", "syntax.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("syntax.yaml:")));
}

}  // namespace
}  // namespace shardgate::conf
