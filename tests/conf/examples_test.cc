// Every file shipped in conf/examples/ loads and validates, so the examples never rot.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "conf/config.h"
#include "tests/support/status_matchers.h"

namespace shardgate::conf {
namespace {

std::vector<std::string> ExampleFiles() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(SHARDGATE_CONF_EXAMPLES_DIR, ec)) {
    if (entry.path().extension() == ".yaml" || entry.path().extension() == ".yml") {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ExamplesTest, DirectoryHasTheDocumentedExamples) {
  std::vector<std::string> files = ExampleFiles();
  std::vector<std::string> names;
  for (const std::string& f : files) names.push_back(std::filesystem::path(f).filename());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"single.yaml", "sharded.yaml", "shardgate.yaml"}));
}

class ExampleFileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleFileTest, Loads) {
  auto config = LoadFile(GetParam());
  ASSERT_OK(config);
  EXPECT_EQ((*config)->path, GetParam());
  EXPECT_FALSE((*config)->users.empty());
  EXPECT_FALSE((*config)->databases.empty());
  for (const auto& [name, db] : (*config)->databases) {
    EXPECT_FALSE(db.shards.empty()) << name;
    for (const auto& [table, rule] : db.tables) {
      if (!rule.reference) {
        EXPECT_NE(db.routers.find(rule.router), db.routers.end()) << table;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ConfExamples, ExampleFileTest, ::testing::ValuesIn(ExampleFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = std::filesystem::path(info.param).stem();
                           std::replace_if(
                               name.begin(), name.end(),
                               [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); },
                               '_');
                           return name;
                         });

TEST(ExamplesTest, SingleIsAPlainPooledProxy) {
  ASSERT_OK_AND_ASSIGN(auto config,
                       LoadFile(std::string(SHARDGATE_CONF_EXAMPLES_DIR) + "/single.yaml"));
  const DatabaseConfig* app = config->FindDatabase("app");
  ASSERT_NE(app, nullptr);
  EXPECT_FALSE(app->Sharded());
  ASSERT_EQ(app->shards.size(), 1u);
  EXPECT_EQ(app->shards[0].replicas.size(), 1u);
  ASSERT_NE(config->FindUser("app_md5"), nullptr);
  EXPECT_EQ(config->FindUser("app_md5")->auth, AuthMethod::kMd5);
  EXPECT_EQ(config->FindUser("app")->auth, AuthMethod::kScram);
  EXPECT_TRUE(config->IsAdmin("admin"));
  EXPECT_FALSE(config->IsAdmin("app"));
}

TEST(ExamplesTest, ShardedHasEveryRouterType) {
  ASSERT_OK_AND_ASSIGN(auto config,
                       LoadFile(std::string(SHARDGATE_CONF_EXAMPLES_DIR) + "/sharded.yaml"));
  const DatabaseConfig* app = config->FindDatabase("app");
  ASSERT_NE(app, nullptr);
  EXPECT_TRUE(app->Sharded());
  std::vector<std::string> types;
  for (const auto& [name, router] : app->routers) types.push_back(router.type);
  EXPECT_THAT(types, ::testing::IsSupersetOf({"modulo", "range", "directory", "hash_ring"}));
  ASSERT_NE(app->tables.find("countries"), app->tables.end());
  EXPECT_TRUE(app->tables.at("countries").reference);
}

}  // namespace
}  // namespace shardgate::conf
