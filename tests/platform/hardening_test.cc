// The whole platform against issue 11's findings: /metrics behind a key, uploads that could never
// be served, the smaller protocol checks, stale upload files, a full disk, and a shutdown that
// leaves requests in flight.
#include <sys/mount.h>

#include <cstring>
#include <thread>

#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

using namespace std::chrono_literals;

json greedy(const std::string& model, const std::string& prompt, int max_tokens) {
  return {{"model", model}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
          {"ignore_eos", true}};
}

json error_of(const HttpResponse& r) {
  json j = json::parse(r.body, nullptr, false);
  EXPECT_TRUE(j.is_object() && j.contains("error")) << r.body;
  return j.is_object() && j.contains("error") ? j["error"] : json::object();
}

class HardeningTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override {
    c.metrics_key = "scraper-key-0123";
    c.max_lora_rank = 32;
  }
};

TEST_F(HardeningTest, MetricsNeedTheAdminOrTheMetricsKey) {
  auto [tenant, key] = make_tenant("acme");
  HttpResponse anon = call("GET", "/metrics", "");
  EXPECT_EQ(anon.status, 401);
  EXPECT_EQ(error_of(anon)["type"], "authentication_error");
  EXPECT_EQ(anon.body.find(tenant), std::string::npos);
  EXPECT_EQ(call("GET", "/metrics", "wrong-key").status, 401);
  EXPECT_EQ(call("GET", "/metrics", key).status, 403);
  EXPECT_EQ(call("GET", "/metrics", kAdminKey).status, 200);
  EXPECT_EQ(call("GET", "/metrics", "scraper-key-0123").status, 200);
}

TEST_F(HardeningTest, UploadsThatCanNeverBeServedAre422) {
  auto [tenant, key] = make_tenant("acme");
  // Rank 64 on a server whose engine takes rank 32 at most.
  HttpResponse wide = upload("wide", tenant, "wide-64");
  EXPECT_EQ(wide.status, 422) << wide.body;
  EXPECT_NE(error_of(wide)["message"].get<std::string>().find("rank"), std::string::npos) << wide.body;

  // lora_alpha so large that alpha / r is Inf in float32.
  json config = json::parse(fixture_file("support-bot", "adapter_config.json"));
  config["lora_alpha"] = 1e308;
  HttpResponse alpha = upload("alpha", tenant, "support-bot", false, config.dump());
  EXPECT_EQ(alpha.status, 422) << alpha.body;

  // A finite float32 weight that overflows once scaled (alpha 16 / r 8 = 2; 3e38 · 2 = Inf).
  std::string blob = fixture_file("support-bot", "adapter_model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, blob.data(), 8);
  json header = json::parse(blob.substr(8, header_len));
  size_t offset = 0;
  for (const auto& [name, t] : header.items()) {
    if (name.find("lora_B") != std::string::npos && t["dtype"] == "F32") {
      offset = 8 + header_len + t["data_offsets"][0].get<size_t>();
      break;
    }
  }
  ASSERT_GT(offset, 0u);
  const float huge = 3e38f;
  std::memcpy(blob.data() + offset, &huge, sizeof huge);
  auto [type, body] = multipart({{"tenant", tenant}, {"config", fixture_file("support-bot", "adapter_config.json")}},
                                {{"weights", blob}});
  HttpResponse overflow = call("PUT", "/admin/v1/adapters/overflow", kAdminKey, body, type);
  EXPECT_EQ(overflow.status, 422) << overflow.body;

  // None of them exists afterwards; a sound upload still goes through.
  EXPECT_EQ(call("GET", "/admin/v1/adapters/wide", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/admin/v1/adapters/alpha", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/admin/v1/adapters/overflow", kAdminKey).status, 404);
  EXPECT_EQ(upload("fine", tenant, "support-bot").status, 201);
}

TEST_F(HardeningTest, AdapterNamesDotAndDotDotAreRefused) {
  auto [tenant, key] = make_tenant("acme");
  for (const char* name : {".", ".."}) {
    HttpResponse r = upload(name, tenant, "support-bot");
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
    EXPECT_EQ(error_of(r)["param"], "name") << r.body;
  }
  EXPECT_EQ(upload(".hidden-ok", tenant, "support-bot").status, 201);
}

TEST_F(HardeningTest, ContentTypeMustBeExactlyJson) {
  auto [tenant, key] = make_tenant("acme");
  const std::string body = greedy(server_->model_id(), "hi", 1).dump();
  EXPECT_EQ(call("POST", "/v1/completions", key, body, "application/jsonx").status, 415);
  EXPECT_EQ(call("POST", "/v1/completions", key, body, "application/json-seq").status, 415);
  EXPECT_EQ(call("POST", "/admin/v1/tenants", kAdminKey, R"({"name":"x"})", "application/jsonx").status, 415);
  EXPECT_EQ(call("POST", "/v1/completions", key, body, "application/json; charset=utf-8").status, 200);
  EXPECT_EQ(call("POST", "/v1/completions", key, body, "Application/JSON").status, 200);
}

TEST_F(HardeningTest, TheBearerSchemeIsCaseInsensitive) {
  auto [tenant, key] = make_tenant("acme");
  for (const char* scheme : {"bearer ", "BEARER ", "Bearer  "}) {
    HttpConnection c(server_->port());
    HttpResponse r = c.request("GET", "/v1/models", "", {{"Authorization", std::string(scheme) + key}});
    EXPECT_EQ(r.status, 200) << scheme << ": " << r.body;
  }
  HttpConnection c(server_->port());
  EXPECT_EQ(c.request("GET", "/v1/models", "", {{"Authorization", "Basic " + key}}).status, 401);
}

TEST_F(HardeningTest, EngineValidationErrorsNameTheirFieldAndStay4xxWhenStreamed) {
  auto [tenant, key] = make_tenant("acme");
  json body = greedy(server_->model_id(), "hi", 2);
  body["top_p"] = 1e-300;  // a double above 0 that is 0 as a float
  HttpResponse plain = call("POST", "/v1/completions", key, body.dump());
  EXPECT_EQ(plain.status, 400) << plain.body;
  EXPECT_EQ(error_of(plain)["param"], "top_p") << plain.body;

  body["stream"] = true;
  HttpResponse streamed = call("POST", "/v1/completions", key, body.dump());
  EXPECT_EQ(streamed.status, 400) << streamed.body;
  EXPECT_EQ(error_of(streamed)["param"], "top_p") << streamed.body;
  // The refused request gave its limiter slot back.
  EXPECT_EQ(server_->platform().limiter->in_flight(tenant), 0);
  // A valid stream is still a stream.
  body.erase("top_p");
  HttpResponse ok = call("POST", "/v1/completions", key, body.dump());
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("data: [DONE]"), std::string::npos);
}

TEST_F(HardeningTest, ReadyzAnswers503DuringTheDrain) {
  auto [tenant, key] = make_tenant("acme");
  json slow = greedy(server_->model_id(), "hi", 400);
  slow["stream"] = true;
  HttpConnection c(server_->port());
  c.send_request("POST", "/v1/completions", slow.dump(),
                 {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}});
  ASSERT_EQ(c.read_head().status, 200);
  const uint16_t port = server_->port();  // port() waits while stop() runs
  std::thread stopper([&] { (void)server_->stop(3000ms); });
  std::this_thread::sleep_for(100ms);
  HttpResponse r = HttpConnection(port).request("GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.headers["retry-after"].empty());
  stopper.join();
}

// Requests still running when the drain ends are ended by stop() itself, while what their last
// events settle into (limiter, usage, metrics) is alive; before, ~Engine ran after those were freed.
TEST_F(HardeningTest, StopEndsRequestsThatOutliveTheDrain) {
  auto [tenant, key] = make_tenant("acme");
  json slow = greedy(server_->model_id(), "hi", 500);
  slow["stream"] = true;
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (int i = 0; i < 3; ++i) {
    conns.push_back(std::make_unique<HttpConnection>(server_->port()));
    conns.back()->send_request("POST", "/v1/completions", slow.dump(),
                               {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}});
    ASSERT_EQ(conns.back()->read_head().status, 200);
  }
  ASSERT_TRUE(server_->stop(0ms).ok());
  EXPECT_EQ(server_->platform().limiter->in_flight(tenant), 0);
  EXPECT_EQ(server_->platform().engine, nullptr);
  server_.reset();  // nothing left to reach freed members
}

TEST_F(HardeningTest, StartupRemovesStaleUploadFiles) {
  const auto uploads = dir_ / "uploads";
  ASSERT_TRUE(server_->stop(1000ms).ok());
  server_.reset();
  std::ofstream(uploads / "quilt-upload-left-by-kill-9") << "partial body";
  std::ofstream(uploads / "quilt-part-left-by-kill-9") << "partial part";
  std::ofstream(uploads / "not-ours.txt") << "kept";
  start();
  EXPECT_FALSE(std::filesystem::exists(uploads / "quilt-upload-left-by-kill-9"));
  EXPECT_FALSE(std::filesystem::exists(uploads / "quilt-part-left-by-kill-9"));
  EXPECT_TRUE(std::filesystem::exists(uploads / "not-ours.txt"));
}

// The data dir on a 24 MB tmpfs of the test's own (needs root to mount; skipped otherwise).
class FullDiskServerTest : public ServerTest {
 protected:
  void SetUp() override {
    std::random_device rd;
    mnt_ = std::filesystem::temp_directory_path() / ("quilt-full-disk-" + std::to_string(rd()));
    std::filesystem::create_directories(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=24m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
    }
    mounted_ = true;
    ServerTest::SetUp();
  }
  void TearDown() override {
    ServerTest::TearDown();
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
    std::filesystem::remove_all(mnt_);
  }
  void configure(app::ServerConfig& c) override { c.data_dir = mnt_ / "data"; }

  void fill() {
    std::ofstream f(mnt_ / "ballast", std::ios::binary | std::ios::app);
    const std::string kb(1 << 10, 'x');
    while (f.write(kb.data(), static_cast<std::streamsize>(kb.size())) && f.flush()) {
    }
  }

  std::filesystem::path mnt_;
  bool mounted_ = false;
};

TEST_F(FullDiskServerTest, AFullDiskAnswersWrites507KeepsServingAndRecovers) {
  auto [tenant, key] = make_tenant("acme");
  ASSERT_EQ(upload("bot", tenant, "support-bot").status, 201);
  fill();

  // Tenant writes until storage refuses one (the WAL's last page may still take a few): 507 with
  // the envelope, never a crash.
  HttpResponse refused;
  for (int i = 0; i < 2000; ++i) {
    refused = call("POST", "/admin/v1/tenants", kAdminKey, json{{"name", "t" + std::to_string(i)}}.dump());
    if (refused.status != 201) break;
  }
  ASSERT_EQ(refused.status, 507) << refused.body;
  EXPECT_EQ(error_of(refused)["type"], "insufficient_storage") << refused.body;
  EXPECT_NE(error_of(refused)["message"].get<std::string>().find("read-only"), std::string::npos);

  // Uploads and key changes are refused the same way; completions go on with the adapter stored
  // before; the server stays ready.
  HttpResponse up = upload("more", tenant, "wide-64");
  EXPECT_EQ(up.status, 507) << up.body;
  EXPECT_EQ(call("POST", "/admin/v1/tenants/" + tenant + "/keys", kAdminKey).status, 507);
  HttpResponse done = call("POST", "/v1/completions", key, greedy("bot", "hi", 3).dump());
  EXPECT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(call("GET", "/readyz", "").status, 200);

  std::filesystem::remove(mnt_ / "ballast");
  int status = 0;
  for (int i = 0; i < 100 && status != 201; ++i) {
    status = call("POST", "/admin/v1/tenants", kAdminKey, R"({"name":"late"})").status;
    if (status != 201) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status, 201) << "storage did not recover after space returned";
}

}  // namespace
}  // namespace quilt::testing
