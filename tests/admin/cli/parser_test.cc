// The quilt command line as a user meets it: --help everywhere, --version, --flag=value, config
// files (JSON and TOML), environment variables, and clear refusals with exit status 2.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/admin/cli/quilt_process.h"

namespace quilt::testing {
namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(CliParserTest, HelpOnEveryCommandAndSubcommand) {
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"generate"},
      {"serve"},
      {"tenants"},
      {"tenants", "create"},
      {"tenants", "list"},
      {"tenants", "delete"},
      {"keys"},
      {"keys", "create"},
      {"keys", "list"},
      {"keys", "revoke"},
      {"adapters"},
      {"adapters", "push"},
      {"adapters", "list"},
      {"adapters", "show"},
      {"adapters", "activate"},
      {"adapters", "rollback"},
      {"adapters", "split"},
      {"adapters", "evict"},
      {"adapters", "delete"},
      {"usage"},
  };
  for (const auto& command : commands) {
    std::vector<std::string> args = command;
    args.push_back("--help");
    std::string usage = "Usage: quilt";
    for (const auto& c : command) usage += " " + c;
    QuiltRun r = run_quilt(args);
    EXPECT_EQ(r.code, 0) << usage << "\n" << r;
    EXPECT_TRUE(has(r.out, usage + " [OPTIONS]")) << r;
  }
  // What the help says, for a few: serve's settings, the client's globals and env variables.
  QuiltRun serve = run_quilt({"serve", "--help"});
  for (const char* flag : {"--model DIR", "--port PORT", "--config", "--max-in-flight-per-tenant N", "QUILT_ADMIN_KEY"}) {
    EXPECT_TRUE(has(serve.out, flag)) << flag << "\n" << serve;
  }
  QuiltRun push = run_quilt({"adapters", "push", "-h"});
  for (const char* flag : {"--url URL (Env:QUILT_URL)", "--key KEY (Env:QUILT_KEY)", "--json", "--stage", "--meta"}) {
    EXPECT_TRUE(has(push.out, flag)) << flag << "\n" << push;
  }
  QuiltRun top = run_quilt({"--help"});
  for (const char* command : {"generate", "serve", "tenants", "keys", "adapters", "usage"}) {
    EXPECT_TRUE(has(top.out, "  " + std::string(command) + " ")) << command << "\n" << top;
  }
}

TEST(CliParserTest, VersionNamesTheCommit) {
  QuiltRun r = run_quilt({"--version"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(^quilt \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,}|unknown)\)\n$)"))) << r;
}

TEST(CliParserTest, MistakesExitTwoWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{}, "Usage: quilt"},
      {{"bogus"}, "bogus"},
      {{"tenants"}, "A subcommand is required"},
      {{"serve", "--port=abc"}, "quilt serve: port: expected a non-negative integer, got 'abc'"},
      {{"serve", "--port", "abc"}, "quilt serve: port: expected a non-negative integer, got 'abc'"},
      {{"serve", "--no-such-flag", "1"}, "--no-such-flag"},
      {{"serve", "--port"}, "--port"},
      {{"serve", "--config", "/no/such/config.json"}, "/no/such/config.json"},
      {{"generate"}, "prompt is required"},
      {{"generate", "--max-tokens", "many", "hi"}, "--max-tokens"},
      {{"generate", "--dtype", "float8", "hi"}, "float8"},
      {{"keys", "create"}, "--tenant is required"},
      {{"keys", "create", "--tenant", "t", "--scope", "root"}, "root"},
      {{"adapters", "rollback", "a", "x"}, "version"},
      {{"adapters", "push", "/no/such/dir", "--name", "a"}, "/no/such/dir"},
      {{"usage", "--group-by", "week"}, "week"},
      {{"tenants", "list", "--url", "https://127.0.0.1:8080"}, "only http:// URLs are supported"},
  };
  for (const Case& c : cases) {
    QuiltRun r = run_quilt(c.args);
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << "\n" << r;
    EXPECT_TRUE(has(r.err, c.message)) << line << ": stderr does not say '" << c.message << "'\n" << r;
    EXPECT_EQ(r.out, "") << line;
  }
}

TEST(CliParserTest, UrlFromTheFlagInEitherFormOrTheEnvironment) {
  // Nothing listens on port 1: each form must name the address it tried, and exit 2.
  for (const auto& [args, env] : std::vector<std::pair<std::vector<std::string>, std::map<std::string, std::string>>>{
           {{"tenants", "list", "--url=http://127.0.0.1:1"}, {}},
           {{"tenants", "list", "--url", "http://127.0.0.1:1"}, {}},
           {{"tenants", "list"}, {{"QUILT_URL", "http://127.0.0.1:1"}}},
           // The flag wins over the environment.
           {{"usage", "--url=http://127.0.0.1:1"}, {{"QUILT_URL", "http://127.0.0.1:2"}}},
       }) {
    QuiltRun r = run_quilt(args, env);
    EXPECT_EQ(r.code, 2) << r;
    EXPECT_TRUE(has(r.err, "cannot connect to http://127.0.0.1:1")) << r;
  }
  // The default is the address `quilt serve` listens on by default.
  QuiltRun r = run_quilt({"adapters", "list", "--help"});
  EXPECT_TRUE(has(r.out, "http://127.0.0.1:8080")) << r;
}

class CliConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("quilt-cli-config-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  std::filesystem::path dir_;
};

TEST_F(CliConfigTest, BadSettingsInAConfigFileAreNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {write("bad-value.json", R"({"port": "abc"})"), "port: expected a non-negative integer, got 'abc'"},
      {write("negative.json", R"({"threads": -1})"), "threads: expected a non-negative integer, got '-1'"},
      {write("unknown.json", R"({"no-such-setting": 1})"), "no-such-setting"},
      {write("not-object.json", "{\"port\": 8080"), "not a JSON object"},
      {write("bad.toml", "device = \"tpu\"\n"), "unknown device 'tpu'"},
  };
  for (const auto& [path, message] : cases) {
    QuiltRun r = run_quilt({"serve", "--config", path, "--data-dir", (dir_ / "data").string()});
    EXPECT_EQ(r.code, 2) << path << "\n" << r;
    EXPECT_TRUE(has(r.err, message)) << path << ": stderr does not say '" << message << "'\n" << r;
    EXPECT_TRUE(has(r.err, "quilt serve:")) << r;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data")) << "a refused start created the data dir";
}

TEST_F(CliConfigTest, ConfigFileSettingsApplyAndFlagsBesideItWin) {
  // JSON: the port in the file is not a number, and the --port 0 ServeProcess gives wins; the
  // rest applies.
  const std::string json = write("serve.json", R"({"port": "not-a-port", "threads": 1, "kv-cache-mb": 8,
                                                  "data-dir": ")" + (dir_ / "json-data").string() + R"("})");
  {
    ServeProcess s(dir_, "cli-config-admin-key", {"--config", json});
    ASSERT_NE(s.port(), 0) << s.log();
    EXPECT_TRUE(has(s.log(), "data " + (dir_ / "json-data").string())) << s.log();
    EXPECT_EQ(s.stop(), 0);
  }
  // TOML: the same keys.
  const std::string toml = write("serve.toml", "threads = 1\nkv-cache-mb = 8\ndata-dir = \"" +
                                                   (dir_ / "toml-data").string() + "\"\n");
  ServeProcess s(dir_, "cli-config-admin-key", {"--config", toml}, "toml-serve.log");
  ASSERT_NE(s.port(), 0) << s.log();
  EXPECT_TRUE(has(s.log(), "data " + (dir_ / "toml-data").string())) << s.log();
  EXPECT_EQ(s.stop(), 0);
}

}  // namespace
}  // namespace quilt::testing
