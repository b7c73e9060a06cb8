// `shardgate --config F --check`: exit 0 on a good file; exit 1 with FILE:LINE:COLUMN: lines on
// a bad one. The binary is run as a child process, as an operator's script would.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <tuple>

#include "tests/proxy/proxy_fixture.h"

namespace shardgate::testing {
namespace {

using ::testing::HasSubstr;

// A temp dir with one file in it, removed on destruction.
class TempYaml {
 public:
  explicit TempYaml(const std::string& text) {
    char templ[] = "/tmp/sg-check-XXXXXX";
    if (mkdtemp(templ) != nullptr) dir_ = templ;
    path_ = dir_ + "/shardgate.yaml";
    std::ofstream(path_) << text;
  }
  ~TempYaml() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

std::string Binary() {
  if (const char* b = getenv("SHARDGATE_BIN"); b != nullptr && *b != '\0') return b;
  return SHARDGATE_BINARY;
}

// A config the checker must accept without any server running: the addresses are never dialed.
constexpr char kGoodYaml[] = R"(listen: {host: 127.0.0.1, port: 6432}
workers: 2
users:
  - {name: app, password: app_pw, pool_mode: transaction}
  - {name: app_md5, password: md5_pw, auth: md5}
databases:
  app:
    pool_size: 4
    shards:
      - name: s0
        primary: {host: 127.0.0.1, port: 5432, dbname: app}
)";

class CheckConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(Binary().c_str(), X_OK), 0) << "no shardgate binary at " << Binary();
  }
};

TEST_F(CheckConfigTest, GoodFileExitsZero) {
  TempYaml file(kGoodYaml);
  auto [code, output] = RunShell(absl::StrCat(Binary(), " --config ", file.path(), " --check"));
  EXPECT_EQ(code, 0) << output;
}

// Passwords in a file every user may read: a warning (not an error), gone once it is 0640.
TEST_F(CheckConfigTest, WorldReadableFileWithPasswordsIsWarnedAbout) {
  TempYaml file(kGoodYaml);
  ASSERT_EQ(chmod(file.path().c_str(), 0644), 0);
  auto [code, output] = RunShell(absl::StrCat(Binary(), " --config ", file.path(), " --check"));
  EXPECT_EQ(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("holds passwords and every user of this machine may read it"));
  ASSERT_EQ(chmod(file.path().c_str(), 0640), 0);
  std::tie(code, output) =
      RunShell(absl::StrCat(Binary(), " --config ", file.path(), " --check"));
  EXPECT_EQ(code, 0) << output;
  EXPECT_THAT(output, ::testing::Not(HasSubstr("holds passwords")));
}

TEST_F(CheckConfigTest, BadValueExitsOneWithFileLineColumn) {
  std::string yaml = kGoodYaml;
  yaml.replace(yaml.find("workers: 2"), 10, "workers: -5");  // line 2, value at column 10
  TempYaml file(yaml);
  auto [code, output] = RunShell(absl::StrCat(Binary(), " --config ", file.path(), " --check"));
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr(file.path() + ":2:10: ")) << output;
}

TEST_F(CheckConfigTest, EveryProblemIsReportedWithItsPosition) {
  std::string yaml = kGoodYaml;
  yaml += "bogus_key: 1\n";                                           // line 12, column 1
  yaml.replace(yaml.find("pool_size: 4"), 12, "pool_size: lots");  // line 8, column 16
  TempYaml file(yaml);
  auto [code, output] = RunShell(absl::StrCat(Binary(), " --config ", file.path(), " --check"));
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr(file.path() + ":12:1: ")) << output;
  EXPECT_THAT(output, HasSubstr(file.path() + ":8:16: ")) << output;
}

TEST_F(CheckConfigTest, YamlSyntaxErrorExitsOne) {
  TempYaml file("listen: {host: 127.0.0.1, port: 6432\nworkers: [\n");
  auto [code, output] = RunShell(absl::StrCat(Binary(), " --config ", file.path(), " --check"));
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, ::testing::ContainsRegex(file.path() + ":[0-9]+:[0-9]+: "));
}

TEST_F(CheckConfigTest, MissingFileExitsOne) {
  auto [code, output] =
      RunShell(absl::StrCat(Binary(), " --config /nonexistent/shardgate.yaml --check"));
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr("/nonexistent/shardgate.yaml:1:1: ")) << output;
}

}  // namespace
}  // namespace shardgate::testing
