// Plan::ShardParams: the libpq parameters shardctl connects to a shard with, server_tls included.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "conf/config.h"
#include "tools/shardctl/reshard.h"

namespace shardgate::tools::reshard {
namespace {

constexpr char kConfig[] =
    "users: [{name: postgres, password: pw}]\n"
    "databases:\n"
    "  app:\n"
    "    shards: [{name: s0, primary: {host: db0.example, port: 5433, dbname: app_s0}}]\n";

Plan PlanFor(const std::string& yaml) {
  auto config = conf::LoadString(yaml, "params.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  Plan plan;
  plan.database = "app";
  plan.old_config = plan.new_config = *config;
  return plan;
}

TEST(ShardParamsTest, PlainWithoutServerTls) {
  auto params = PlanFor(kConfig).ShardParams("s0");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ((*params)["host"], "db0.example");
  EXPECT_EQ((*params)["port"], "5433");
  EXPECT_EQ((*params)["dbname"], "app_s0");
  EXPECT_EQ((*params)["password"], "pw");
  EXPECT_EQ(params->count("sslmode"), 0u);
}

TEST(ShardParamsTest, ServerTlsBecomesLibpqSslParameters) {
  auto params = PlanFor(std::string(kConfig) +
                        "server_tls: {sslmode: verify-full, root_cert: /dev/null, cert: "
                        "/dev/null, key: /dev/null}\n")
                    .ShardParams("s0");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ((*params)["sslmode"], "verify-full");
  EXPECT_EQ((*params)["sslrootcert"], "/dev/null");
  EXPECT_EQ((*params)["sslcert"], "/dev/null");
  EXPECT_EQ((*params)["sslkey"], "/dev/null");

  auto required = PlanFor(std::string(kConfig) + "server_tls: {sslmode: require}\n")
                      .ShardParams("s0");
  ASSERT_TRUE(required.ok());
  EXPECT_EQ((*required)["sslmode"], "require");
  EXPECT_EQ(required->count("sslrootcert"), 0u);
}

}  // namespace
}  // namespace shardgate::tools::reshard
