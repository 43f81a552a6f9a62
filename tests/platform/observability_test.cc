// Logs and metrics of a real `quilt serve`: one JSON access-log line per request with its figures,
// X-Request-Id echoed or made, the generated admin key in a 0600 file and in no log, and /metrics
// with the inference gateway's vllm:* names and the completion counters moving.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

using namespace std::chrono_literals;

// A file's text, "" when it cannot be read (yet).
std::string text_of(const std::filesystem::path& path) {
  auto r = read_file(path.string());
  return r.ok() ? *r : std::string();
}

class ObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("quilt-observability-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    spawn();
  }
  void TearDown() override {
    stop();
    std::filesystem::remove_all(dir_);
  }

  // `quilt serve` with no admin key configured (so one is generated), JSON logs at debug level,
  // stdout and stderr to files.
  void spawn() {
    const std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    const std::string data = (dir_ / "data").string();
    pid_ = fork();
    if (pid_ == 0) {
      freopen(out.c_str(), "w", stdout);
      freopen(err.c_str(), "w", stderr);
      unsetenv("QUILT_ADMIN_KEY");
      execl(QUILT_BINARY, QUILT_BINARY, "serve", "--data-dir", data.c_str(), "--port", "0",
            "--threads", "2", "--kv-cache-mb", "16", "--log-format", "json", "--log-level", "debug",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = text_of(dir_ / "stdout");
      const size_t at = text.find("http://127.0.0.1:");
      if (at != std::string::npos && text.find(" (device", at) != std::string::npos) {
        port_ = static_cast<uint16_t>(std::stoi(text.substr(at + 17)));
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& key,
                    const std::string& body = "", std::map<std::string, std::string> headers = {},
                    const std::string& type = "application/json") {
    HttpConnection c(port_);
    if (!key.empty()) headers["Authorization"] = "Bearer " + key;
    if (!body.empty()) headers["Content-Type"] = type;
    return c.request(method, path, body, headers);
  }

  std::string stderr_text() const { return text_of(dir_ / "stderr"); }

  // The JSON log lines (other lines, if any, are not the facade's and are skipped).
  std::vector<json> log_lines() const {
    std::vector<json> out;
    std::istringstream in(stderr_text());
    for (std::string line; std::getline(in, line);) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
    }
    return out;
  }
  // The access-log line of a request id, waiting a moment for it (it is written as the exchange
  // ends, which may be just after the client read the answer).
  json access_line(const std::string& request_id) const {
    for (int i = 0; i < 100; ++i) {
      for (const json& j : log_lines()) {
        if (j.value("msg", "") == "request" && j.value("request_id", "") == request_id) return j;
      }
      std::this_thread::sleep_for(20ms);
    }
    return json();
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// The value of the first sample line starting with `prefix` ("name{labels}" or "name"), or NaN.
double sample(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0 && line.size() > prefix.size() &&
        (line[prefix.size()] == ' ' || prefix.back() == '}' || prefix.back() == '{' ||
         line[prefix.size()] == '{')) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return std::nan("");
}

TEST_F(ObservabilityTest, AccessLogRequestIdsAdminKeyFileAndMetrics) {
  ASSERT_GT(port_, 0) << "the server did not start; stderr:\n" << stderr_text();

  // The generated admin key: in a 0600 file, and the log says where, never what.
  const std::filesystem::path key_file = dir_ / "data" / "admin.key";
  struct stat st {};
  ASSERT_EQ(::stat(key_file.c_str(), &st), 0) << "no " << key_file;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string admin = read_file(key_file.string()).value();
  while (!admin.empty() && (admin.back() == '\n' || admin.back() == '\r')) admin.pop_back();
  ASSERT_GE(admin.size(), 16u);
  bool said_where = false;
  for (const json& j : log_lines()) {
    said_where |= j.value("msg", "") == "admin key generated" && j.value("file", "") == key_file.string();
  }
  EXPECT_TRUE(said_where) << stderr_text();

  // A tenant, a key, an adapter (version 1).
  HttpResponse t = call("POST", "/admin/v1/tenants", admin, R"({"name":"obs"})");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string tenant = json::parse(t.body)["id"];
  HttpResponse k = call("POST", "/admin/v1/tenants/" + tenant + "/keys", admin);
  ASSERT_EQ(k.status, 201) << k.body;
  const std::string key = json::parse(k.body)["key"];
  auto [type, body] = multipart({{"tenant", tenant}},
                                {{"config", fixture_file("sql-writer", "adapter_config.json")},
                                 {"weights", fixture_file("sql-writer", "adapter_model.safetensors")}});
  HttpResponse up = call("PUT", "/admin/v1/adapters/sql-writer", admin, body, {}, type);
  ASSERT_EQ(up.status, 201) << up.body;

  // A completion with the client's request id: echoed, and its access-log line has every figure.
  const std::string completion = R"({"model":"sql-writer","prompt":"SELECT","max_tokens":4,"ignore_eos":true})";
  HttpResponse r = call("POST", "/v1/completions", key, completion, {{"X-Request-Id", "obs-test-1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-request-id"), "obs-test-1");
  json line = access_line("obs-test-1");
  ASSERT_TRUE(line.is_object()) << stderr_text();
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["method"], "POST");
  EXPECT_EQ(line["route"], "/v1/completions");
  EXPECT_EQ(line["status"], 200);
  EXPECT_EQ(line["tenant"], tenant);
  EXPECT_EQ(line["adapter"], "sql-writer@1");
  EXPECT_GT(line["prompt_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(line["completion_tokens"], 4);
  EXPECT_EQ(line["finish_reason"], "length");
  EXPECT_GE(line["queue_s"].get<double>(), 0.0);
  EXPECT_GE(line["ttft_s"].get<double>(), 0.0);
  EXPECT_GE(line["total_s"].get<double>(), line["ttft_s"].get<double>());
  EXPECT_FALSE(line.contains("error"));

  // No id given: one is made (32 hex digits) and is the one logged. A hostile one is cleaned.
  HttpResponse m = call("GET", "/v1/models", key);
  ASSERT_EQ(m.status, 200);
  const std::string made = m.header("x-request-id");
  EXPECT_TRUE(std::regex_match(made, std::regex("[0-9a-f]{32}"))) << made;
  EXPECT_TRUE(access_line(made).is_object());
  HttpResponse odd = call("GET", "/v1/models", key, "", {{"X-Request-Id", "a b\"c" + std::string(300, 'x')}});
  EXPECT_EQ(odd.header("x-request-id"), "abc" + std::string(125, 'x'));

  // Errors: the cause is logged, a 5xx-free 4xx at info; a wrong key is never written.
  HttpResponse bad = call("POST", "/v1/completions", key, R"({"model":"sql-writer","prompt":"x","max_tokens":-1})",
                          {{"X-Request-Id", "obs-bad-1"}});
  EXPECT_EQ(bad.status, 400);
  json bad_line = access_line("obs-bad-1");
  ASSERT_TRUE(bad_line.is_object());
  EXPECT_EQ(bad_line["status"], 400);
  EXPECT_EQ(bad_line["level"], "info");
  EXPECT_NE(bad_line.value("error", "").find("max_tokens"), std::string::npos) << bad_line;
  const std::string wrong_key = "qk_not-a-key-0123456789abcdef";
  EXPECT_EQ(call("GET", "/v1/models", wrong_key, "", {{"X-Request-Id", "obs-401"}}).status, 401);
  EXPECT_TRUE(access_line("obs-401").is_object());

  // /metrics: the inference gateway's names with sane values, the new counters moved.
  HttpResponse metrics = call("GET", "/metrics", admin);
  ASSERT_EQ(metrics.status, 200);
  const std::string& text = metrics.body;
  EXPECT_EQ(sample(text, "vllm:num_requests_waiting"), 0.0) << text;
  EXPECT_EQ(sample(text, "vllm:num_requests_running"), 0.0) << text;
  const double kv = sample(text, "vllm:kv_cache_usage_perc");
  EXPECT_TRUE(kv >= 0.0 && kv <= 1.0) << kv;
  EXPECT_EQ(sample(text, "quilt_kv_cache_usage_ratio"), kv);
  const double info_time = sample(text, "vllm:lora_requests_info{");
  EXPECT_NEAR(info_time, static_cast<double>(std::time(nullptr)), 60.0) << text;
  EXPECT_NE(text.find("max_lora=\"64\""), std::string::npos) << text;
  EXPECT_NE(text.find("running_lora_adapters=\""), std::string::npos) << text;
  EXPECT_NE(text.find("waiting_lora_adapters=\""), std::string::npos) << text;
  EXPECT_EQ(sample(text, "quilt_requests_total{adapter=\"sql-writer\",finish_reason=\"length\",tenant=\"" +
                             tenant + "\",version=\"1\"}"),
            1.0)
      << text;
  EXPECT_EQ(sample(text, "quilt_e2e_latency_seconds_count{adapter=\"sql-writer\",tenant=\"" + tenant + "\"}"), 1.0);
  EXPECT_EQ(sample(text, "quilt_queue_time_seconds_count{adapter=\"sql-writer\",tenant=\"" + tenant + "\"}"), 1.0);
  EXPECT_EQ(sample(text, "quilt_request_completion_tokens_sum{adapter=\"sql-writer\",tenant=\"" + tenant + "\"}"), 4.0);
  EXPECT_GE(sample(text, "quilt_adapter_loads_total{tier=\"device\"}"), 1.0) << text;
  const double host_loads = sample(text, "quilt_adapter_loads_total{tier=\"host\"}");
  EXPECT_GE(host_loads, 0.0) << text;
  EXPECT_EQ(sample(text, "quilt_adapter_evictions_total{tier=\"host\"}"), 0.0) << text;
  EXPECT_EQ(sample(text, "quilt_preemptions_total"), 0.0) << text;
  EXPECT_EQ(sample(text, "quilt_completion_tokens_total{adapter=\"sql-writer\",tenant=\"" + tenant + "\"}"), 4.0);

  // Evicted, then asked for again: read back from storage into the host tier.
  ASSERT_EQ(call("POST", "/admin/v1/adapters/sql-writer/evict", admin).status, 200);
  ASSERT_EQ(call("POST", "/v1/completions", key, completion).status, 200);
  const std::string after = call("GET", "/metrics", admin).body;
  EXPECT_EQ(sample(after, "quilt_adapter_loads_total{tier=\"host\"}"), host_loads + 1) << after;
  EXPECT_GE(sample(after, "quilt_adapter_loads_total{tier=\"device\"}"), 2.0) << after;
  EXPECT_EQ(sample(after, "quilt_requests_total{adapter=\"sql-writer\",finish_reason=\"length\",tenant=\"" +
                              tenant + "\",version=\"1\"}"),
            2.0);

  // No secret anywhere in the log: not the admin key, not the tenant key, not a wrong key.
  stop();
  const std::string log = stderr_text();
  EXPECT_EQ(log.find(admin), std::string::npos);
  EXPECT_EQ(log.find(key), std::string::npos);
  EXPECT_EQ(log.find(wrong_key), std::string::npos);
  EXPECT_EQ(text_of(dir_ / "stdout").find(admin), std::string::npos);
  bool stopped = false;
  for (const json& j : log_lines()) stopped |= j.value("msg", "") == "stopped";
  EXPECT_TRUE(stopped) << log;
}

}  // namespace
}  // namespace quilt::testing
