// GET /openapi.json: served without a key as committed (on the admin port too), and in step with
// the code: every route the server registers is documented with its method, and every documented
// operation is routed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>

#include "admin/admin_routes.h"
#include "gateway/openai_routes.h"
#include "gateway/openapi/openapi_route.h"
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Every (method, pattern) the server's main router holds: built the way app::Server builds it
// (registration only captures the platform, it reads nothing).
std::set<std::pair<std::string, std::string>> routed() {
  gateway::Router router;
  gateway::Platform p;
  std::atomic<bool> ready{true};
  gateway::add_openai_routes(router, p);
  admin::add_health_routes(router, p, ready);
  admin::add_admin_routes(router, p);
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& [method, pattern] : router.routes()) out.emplace(lower(method), pattern);
  return out;
}

std::set<std::pair<std::string, std::string>> documented(const json& doc) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method != "parameters") out.emplace(method, path);
    }
  }
  return out;
}

TEST(OpenApiDocument, EveryRouteIsDocumentedAndEveryOperationRouted) {
  const json doc = json::parse(gateway::openapi_document());
  EXPECT_EQ(doc["openapi"], "3.1.0");
  const auto code = routed();
  const auto docs = documented(doc);
  ASSERT_GT(code.size(), 20u);
  for (const auto& [method, path] : code) {
    EXPECT_TRUE(docs.count({method, path})) << method << " " << path << " is routed but not in openapi.json";
  }
  for (const auto& [method, path] : docs) {
    EXPECT_TRUE(code.count({method, path})) << method << " " << path << " is documented but not routed";
  }
}

TEST(OpenApiDocument, EveryOperationAnswersErrorsWithTheEnvelope) {
  const json doc = json::parse(gateway::openapi_document());
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method == "parameters") continue;
      ASSERT_TRUE(op.contains("operationId")) << method << " " << path;
      ASSERT_TRUE(op.contains("security")) << method << " " << path;
      for (const auto& [status, response] : op["responses"].items()) {
        if (status[0] != '4' && status[0] != '5') continue;
        // Errors are the shared responses, each of them the error envelope.
        ASSERT_TRUE(response.contains("$ref")) << method << " " << path << " " << status;
        const std::string name = response["$ref"].get<std::string>().substr(std::string("#/components/responses/").size());
        EXPECT_EQ(doc["components"]["responses"][name]["content"]["application/json"]["schema"]["$ref"],
                  "#/components/schemas/Error")
            << name;
      }
    }
  }
}

class OpenApiServerTest : public ServerTest {};

TEST_F(OpenApiServerTest, ServedWithoutAKeyAsCommitted) {
  const HttpResponse r = call("GET", "/openapi.json", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type").rfind("application/json", 0), 0u);
  EXPECT_EQ(r.body, std::string(gateway::openapi_document()));
  EXPECT_EQ(call("POST", "/openapi.json", "").status, 405);
}

// With --admin-port the admin routes move there; the document (which covers both) is on both.
class OpenApiAdminPortTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override { c.admin_port = 0; }
};

TEST_F(OpenApiAdminPortTest, ServedOnBothPorts) {
  EXPECT_EQ(call("GET", "/openapi.json", "").status, 200);
  HttpConnection admin(server_->admin_port());
  const HttpResponse r = admin.request("GET", "/openapi.json", "", {});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, std::string(gateway::openapi_document()));
}

}  // namespace
}  // namespace quilt::testing
