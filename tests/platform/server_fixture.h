// Starts the whole platform in-process on 127.0.0.1:0 over a temporary data directory.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/server.h"
#include "common/files.h"
#include "tests/platform/http_client.h"

namespace quilt::testing {

using nlohmann::json;

inline std::string source_path(const std::string& rel) { return std::string(QUILT_SOURCE_DIR) + "/" + rel; }

inline std::string fixture_file(const std::string& adapter, const std::string& file) {
  return read_file(source_path("examples/adapters/" + adapter + "/" + file)).value();
}

class ServerTest : public ::testing::Test {
 protected:
  static constexpr const char* kAdminKey = "admin-test-key-0123456789";

  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("quilt-server-test-" + std::to_string(rd()));
    start();
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  virtual void configure(app::ServerConfig&) {}

  void start() {
    app::ServerConfig c;
    c.model = source_path("examples/models/tiny-llama");
    c.data_dir = dir_;
    c.admin_key = kAdminKey;
    c.http.port = 0;
    c.http.threads = 2;
    c.kv_cache_mb = 16;
    configure(c);
    auto s = app::Server::start(c);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = std::move(s).value();
  }
  void restart() {
    ASSERT_TRUE(server_->stop(std::chrono::milliseconds(2000)).ok());
    server_.reset();
    start();
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& key,
                    const std::string& body = "", std::string content_type = "application/json") {
    HttpConnection c(server_->port());
    std::map<std::string, std::string> headers;
    if (!key.empty()) headers["Authorization"] = "Bearer " + key;
    if (!body.empty()) headers["Content-Type"] = content_type;
    return c.request(method, path, body, headers);
  }
  json call_json(const std::string& method, const std::string& path, const std::string& key,
                 const json& body, int expected_status) {
    HttpResponse r = call(method, path, key, body.is_null() ? "" : body.dump());
    EXPECT_EQ(r.status, expected_status) << method << " " << path << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }

  // A tenant and one key for it: {tenant id, key}.
  std::pair<std::string, std::string> make_tenant(const std::string& name, json limits = json::object()) {
    json t = call_json("POST", "/admin/v1/tenants", kAdminKey, {{"name", name}, {"limits", limits}}, 201);
    json k = call_json("POST", "/admin/v1/tenants/" + t["id"].get<std::string>() + "/keys", kAdminKey, nullptr, 201);
    return {t["id"], k["key"]};
  }

  HttpResponse upload(const std::string& name, const std::string& tenant, const std::string& fixture,
                      bool shared = false, const std::string& config_override = "") {
    std::vector<std::pair<std::string, std::string>> fields = {{"tenant", tenant}};
    if (shared) fields.push_back({"shared", "true"});
    fields.push_back({"config", config_override.empty() ? fixture_file(fixture, "adapter_config.json") : config_override});
    auto [type, body] = multipart(fields, {{"weights", fixture_file(fixture, "adapter_model.safetensors")}});
    return call("PUT", "/admin/v1/adapters/" + name, kAdminKey, body, type);
  }

  std::filesystem::path dir_;
  std::unique_ptr<app::Server> server_;
};

}  // namespace quilt::testing
