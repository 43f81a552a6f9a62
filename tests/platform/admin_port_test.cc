// --admin-port: admin routes, /metrics and health on a listener of their own, answering while the
// public port is flooded with idle connections.
#include <memory>
#include <vector>

#include "tests/gateway/raw_http_client.h"
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

class AdminPortTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override {
    c.admin_port = 0;  // a free port
    c.http.max_connections = 16;
  }

  HttpResponse admin_call(const std::string& method, const std::string& path, const std::string& key) {
    HttpConnection c(server_->admin_port());
    std::map<std::string, std::string> headers;
    if (!key.empty()) headers["Authorization"] = "Bearer " + key;
    return c.request(method, path, "", headers);
  }
};

TEST_F(AdminPortTest, AdminRoutesAndMetricsMoveToTheAdminPort) {
  ASSERT_NE(server_->admin_port(), 0);
  ASSERT_NE(server_->admin_port(), server_->port());
  EXPECT_EQ(admin_call("GET", "/admin/v1/tenants", kAdminKey).status, 200);
  EXPECT_EQ(admin_call("GET", "/metrics", kAdminKey).status, 200);
  EXPECT_EQ(admin_call("GET", "/metrics", "").status, 401);
  EXPECT_EQ(admin_call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(admin_call("GET", "/readyz", "").status, 200);
  // The public port serves the API and health, and no admin route or metrics at all.
  EXPECT_EQ(call("GET", "/admin/v1/tenants", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/metrics", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/readyz", "").status, 200);
  EXPECT_EQ(call("GET", "/v1/models", "").status, 401);
}

// Issue 11: with 5,000 idle connections /healthz and /readyz answered 503 for 27 s.
TEST_F(AdminPortTest, HealthAnswersOnTheAdminPortWhileThePublicPortIsFlooded) {
  std::vector<std::unique_ptr<gateway::testing::RawClient>> flood;
  for (int i = 0; i < 40; ++i) {
    flood.push_back(std::make_unique<gateway::testing::RawClient>(server_->port()));
    ASSERT_TRUE(flood.back()->ok());
  }
  // The public port is at its limit: a newcomer is turned away...
  gateway::testing::RawClient probe(server_->port());
  ASSERT_TRUE(probe.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto refused = probe.read_response();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  // ...while the admin port answers at once.
  EXPECT_EQ(admin_call("GET", "/readyz", "").status, 200);
  EXPECT_EQ(admin_call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(admin_call("GET", "/admin/v1/tenants", kAdminKey).status, 200);
}

}  // namespace
}  // namespace quilt::testing
