// The admin client against a real `quilt serve`: tenants, keys, pushes, versions, eviction,
// usage and deletion driven through the quilt binary, its tables and its --json answers checked.
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "admin/cli/http_client.h"
#include "tests/admin/cli/quilt_process.h"

namespace quilt::testing {
namespace {

using nlohmann::json;

constexpr const char* kAdminKey = "cli-e2e-admin-key-0123456789";
constexpr const char* kSqlWriterSha256 = "1ae12afd2ffec893d094a8fc330a23c0e87043b11c18b46f7cf070564db69ef9";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
std::string adapter_dir(const std::string& name) { return std::string(QUILT_SOURCE_DIR) + "/examples/adapters/" + name; }

class CliEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("quilt-cli-e2e-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    server_ = std::make_unique<ServeProcess>(
        dir_, kAdminKey,
        std::vector<std::string>{"--data-dir", (dir_ / "data").string(), "--threads", "2", "--kv-cache-mb", "16"});
    ASSERT_NE(server_->port(), 0) << server_->log();
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->stop(), 0) << server_->log();
    }
    std::filesystem::remove_all(dir_);
  }

  // `quilt ARGS` against the server; the admin key from QUILT_ADMIN_KEY unless `key` is given.
  QuiltRun quilt(const std::vector<std::string>& args, const std::string& key = "") {
    std::map<std::string, std::string> env = {{"QUILT_URL", server_->url()}, {"QUILT_ADMIN_KEY", kAdminKey}};
    if (!key.empty()) env["QUILT_KEY"] = key;
    return run_quilt(args, env);
  }
  // The same with --json, its stdout parsed; a failure (exit code) is reported by the caller.
  json quilt_json(std::vector<std::string> args, const std::string& key = "") {
    args.push_back("--json");
    QuiltRun r = quilt(args, key);
    EXPECT_EQ(r.code, 0) << r;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r;
    return j;
  }
  // One completion on `model` with a tenant key, over HTTP: what usage then counts.
  int complete(const std::string& key, const std::string& model) {
    auto url = admin::cli::parse_server_url(server_->url());
    admin::cli::HttpClient client(*url, key);
    json body = {{"model", model}, {"prompt", "SELECT name FROM"}, {"max_tokens", 4}};
    auto r = client.send("POST", "/v1/completions", {admin::cli::BodyPiece::bytes(body.dump())}, "application/json");
    return r.ok() ? r->status : -1;
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServeProcess> server_;
};

TEST_F(CliEndToEndTest, TenantKeysAdaptersUsageAndDeletion) {
  // A tenant, as JSON and in the table.
  json tenant = quilt_json({"tenants", "create", "acme", "--weight", "2", "--max-concurrent", "4"});
  const std::string id = tenant.value("id", "");
  ASSERT_FALSE(id.empty()) << tenant;
  EXPECT_EQ(tenant["name"], "acme");
  EXPECT_EQ(tenant["weight"], 2.0);
  EXPECT_EQ(tenant["limits"]["max_concurrent"], 4);
  QuiltRun list = quilt({"tenants", "list"});
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_TRUE(std::regex_search(list.out, std::regex("^ID +NAME +WEIGHT +MAX_CONCURRENT"))) << list;
  EXPECT_TRUE(std::regex_search(list.out, std::regex("\n" + id + " +acme +2\\.0 +4 "))) << list;
  QuiltRun quiet = quilt({"tenants", "create", "beta", "-q"});
  EXPECT_EQ(quiet.code, 0) << quiet;
  EXPECT_TRUE(std::regex_match(quiet.out, std::regex("t_[0-9a-f]+\n"))) << quiet;

  // Keys: an inference key (printed alone with -q), then listed without the secret.
  QuiltRun key_run = quilt({"keys", "create", "--tenant", id, "--name", "app", "-q"});
  ASSERT_EQ(key_run.code, 0) << key_run;
  const std::string key = key_run.out.substr(0, key_run.out.size() - 1);
  json listed = quilt_json({"keys", "list", "--tenant", id});
  ASSERT_EQ(listed["data"].size(), 1u) << listed;
  EXPECT_EQ(listed["data"][0]["name"], "app");
  EXPECT_EQ(listed["data"][0]["scope"], "inference");
  EXPECT_FALSE(has(listed.dump(), key)) << "a key list shows the key";

  // Push: progress on stderr, the local sha256, version 1 live; then a second version.
  QuiltRun push = quilt({"adapters", "push", adapter_dir("sql-writer"), "--name", "sql-writer", "--tenant", id,
                    "--meta", "run=7", "--progress"});
  ASSERT_EQ(push.code, 0) << push;
  EXPECT_TRUE(std::regex_search(push.out, std::regex(std::string("local_sha256 +") + kSqlWriterSha256))) << push;
  EXPECT_TRUE(std::regex_search(push.out, std::regex("\nversion +1\n"))) << push;
  EXPECT_TRUE(has(push.err, "100%")) << push;
  json v2 = quilt_json({"adapters", "push", adapter_dir("support-bot"), "--name", "sql-writer", "--tenant", id});
  EXPECT_EQ(v2["version"], 2) << v2;
  EXPECT_FALSE(has(quilt({"adapters", "push", adapter_dir("support-bot"), "--name", "x", "--tenant", id}).err, "%"))
      << "a progress bar drawn on a stderr that is not a terminal, without --progress";

  json adapters = quilt_json({"adapters", "list"});
  json* sql = nullptr;
  for (json& a : adapters["data"]) {
    if (a["name"] == "sql-writer") sql = &a;
  }
  ASSERT_NE(sql, nullptr) << adapters;
  EXPECT_EQ((*sql)["live_version"], 2);
  EXPECT_EQ((*sql)["owner"], id);
  QuiltRun table = quilt({"adapters", "list"});
  EXPECT_TRUE(std::regex_search(table.out, std::regex("\nsql-writer +" + id + " +false +2 "))) << table;

  // A canary split between the two, then bad shares refused before any request.
  json split = quilt_json({"adapters", "split", "sql-writer", "1=0.25", "2=0.75"});
  EXPECT_EQ(split["live"], json::parse(R"({"1": 0.25, "2": 0.75})")) << split;
  QuiltRun bad_split = quilt({"adapters", "split", "sql-writer", "2"});
  EXPECT_EQ(bad_split.code, 2) << bad_split;
  EXPECT_TRUE(has(bad_split.err, "expected VERSION=SHARE")) << bad_split;

  // The tenant calls it; rollback makes version 1 live again; show lists both versions.
  EXPECT_EQ(complete(key, "sql-writer"), 200);
  json rolled = quilt_json({"adapters", "rollback", "sql-writer", "1"});
  EXPECT_EQ(rolled["live_version"], 1) << rolled;
  QuiltRun show = quilt({"adapters", "show", "sql-writer"});
  ASSERT_EQ(show.code, 0) << show;
  EXPECT_TRUE(std::regex_search(show.out, std::regex("live_version +1\n"))) << show;
  EXPECT_TRUE(std::regex_search(show.out, std::regex("\nVERSION +RANK +TARGET_MODULES"))) << show;
  EXPECT_TRUE(std::regex_search(show.out, std::regex(std::string("\n1 +16 +down_proj,gate_proj.* 78304 .*") +
                                                     kSqlWriterSha256)))
      << show;
  EXPECT_TRUE(std::regex_search(show.out, std::regex("\n2 +8 +q_proj,v_proj "))) << show;
  EXPECT_EQ(complete(key, "sql-writer"), 200);

  QuiltRun evict = quilt({"adapters", "evict", "sql-writer"});
  EXPECT_EQ(evict.code, 0) << evict;
  EXPECT_EQ(evict.out, "evicted adapter sql-writer\n");
  EXPECT_EQ(quilt_json({"adapters", "show", "sql-writer"})["resident"]["device"], false);

  // Usage: the two completions, once the server's periodic flush made them visible.
  json usage;
  for (int i = 0; i < 100; ++i) {
    usage = quilt_json({"usage", "--tenant", id});
    if (!usage["data"].empty() && usage["data"][0].value("requests", 0) >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(usage["data"].size(), 1u) << usage;
  EXPECT_EQ(usage["data"][0]["tenant"], id);
  EXPECT_EQ(usage["data"][0]["adapter"], "sql-writer");
  EXPECT_EQ(usage["data"][0]["requests"], 2);
  EXPECT_GT(usage["data"][0]["prompt_tokens"].get<int>(), 0);
  QuiltRun usage_table = quilt({"usage", "--tenant", id, "--group-by", "day"});
  EXPECT_TRUE(std::regex_search(usage_table.out, std::regex("^TENANT +ADAPTER +DAY +REQUESTS +PROMPT_TOKENS"))) << usage_table;
  EXPECT_TRUE(std::regex_search(usage_table.out, std::regex("\n" + id + " +sql-writer +\\d{4}-\\d\\d-\\d\\d +2 "))) << usage_table;

  // Revoking the key stops it.
  const std::string key_id = listed["data"][0]["key_id"];
  QuiltRun revoke = quilt({"keys", "revoke", "--tenant", id, key_id});
  EXPECT_EQ(revoke.code, 0) << revoke;
  EXPECT_EQ(complete(key, "sql-writer"), 401);

  // Deleting the tenant: refused while it owns adapters (the server's message, exit 1), then
  // with --cascade.
  QuiltRun refused = quilt({"tenants", "delete", id});
  EXPECT_EQ(refused.code, 1) << refused;
  EXPECT_TRUE(has(refused.err, "sql-writer")) << refused;
  QuiltRun cascade = quilt({"tenants", "delete", id, "--cascade"});
  EXPECT_EQ(cascade.code, 0) << cascade;
  EXPECT_EQ(cascade.out, "deleted tenant " + id + "\n");
  QuiltRun gone = quilt({"adapters", "show", "sql-writer"});
  EXPECT_EQ(gone.code, 1) << gone;
  EXPECT_TRUE(has(gone.err, ": 404: ")) << gone;
}

TEST_F(CliEndToEndTest, ServerRefusalsArePrintedWithExitOne) {
  struct Case {
    std::vector<std::string> args;
    std::string key;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{"tenants", "list"}, "wrong-key", ": 401: "},
      {{"adapters", "show", "no-such-adapter"}, "", ": 404: "},
      {{"adapters", "rollback", "no-such-adapter", "3"}, "", ": 404: "},
      {{"keys", "revoke", "--tenant", "t_nope", "k_nope"}, "", ": 404: "},
      // Weights that do not fit the base model: a folder with a broken safetensors.
      {{"adapters", "push", (dir_ / "broken").string(), "--name", "broken", "--tenant", "t_nope"}, "", ": 4"},
  };
  std::filesystem::create_directories(dir_ / "broken");
  std::filesystem::copy_file(adapter_dir("sql-writer") + "/adapter_config.json", dir_ / "broken/adapter_config.json");
  std::ofstream(dir_ / "broken/adapter_model.safetensors") << "not safetensors";
  for (const Case& c : cases) {
    QuiltRun r = quilt(c.args, c.key);
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(has(r.err, c.message)) << r;
    EXPECT_EQ(r.out, "") << r;
  }
  // No key at all: the 401 and a hint where the key goes.
  QuiltRun r = run_quilt({"tenants", "list"}, {{"QUILT_URL", server_->url()}});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(has(r.err, "use --key or set QUILT_KEY")) << r;
  // A key from --key wins over QUILT_KEY and QUILT_ADMIN_KEY.
  QuiltRun flag = run_quilt({"tenants", "list", "--key=" + std::string(kAdminKey)},
                       {{"QUILT_URL", server_->url()}, {"QUILT_KEY", "wrong"}, {"QUILT_ADMIN_KEY", "wrong"}});
  EXPECT_EQ(flag.code, 0) << flag;
}

TEST_F(CliEndToEndTest, DeployKeyPushesAndStagesForItsOwnTenant) {
  const std::string id = quilt_json({"tenants", "create", "ci-team"})["id"];
  json deploy = quilt_json({"keys", "create", "--tenant", id, "--name", "ci", "--scope", "deploy"});
  const std::string key = deploy.value("key", "");
  ASSERT_FALSE(key.empty()) << deploy;
  // No --tenant: the deploy key's own.
  json staged = quilt_json({"adapters", "push", adapter_dir("sql-writer"), "--name", "team-sql", "--stage"}, key);
  EXPECT_EQ(staged["version"], 1) << staged;
  EXPECT_EQ(staged["staged"], true) << staged;
  EXPECT_EQ(staged["sha256"], kSqlWriterSha256) << staged;
  // The same content again is the same version (200), not a new one.
  json again = quilt_json({"adapters", "push", adapter_dir("sql-writer"), "--name", "team-sql", "--stage"}, key);
  EXPECT_EQ(again["version"], 1) << again;
  json live = quilt_json({"adapters", "activate", "team-sql", "1"}, key);
  EXPECT_EQ(live["live_version"], 1) << live;
  // A deploy key may not manage tenants.
  QuiltRun denied = quilt({"tenants", "list"}, key);
  EXPECT_EQ(denied.code, 1) << denied;
  EXPECT_TRUE(has(denied.err, ": 403: ")) << denied;
}

}  // namespace
}  // namespace quilt::testing
