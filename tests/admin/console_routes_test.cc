// The console's routes: every embedded asset served with its type and a strict CSP, every file the
// page and its modules load is embedded, and unknown assets get API.md's error envelope.
#include "admin/console/console_routes.h"

#include <regex>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "admin/console/console_assets.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;

struct RecordingWriter : gateway::ResponseWriter {
  int status = 0;
  std::string type, body;
  std::vector<std::pair<std::string, std::string>> headers;
  void send(int s, const std::string& t, std::string b,
            std::vector<std::pair<std::string, std::string>> h) override {
    status = s;
    type = t;
    body = std::move(b);
    headers = std::move(h);
  }
  void start_stream(int, const std::string&,
                    std::vector<std::pair<std::string, std::string>>) override {
    ADD_FAILURE() << "the console never streams";
  }
  bool write_chunk(std::string) override { return false; }
  void end_stream() override {}
  void on_disconnect(std::function<void()>) override {}
  bool connected() const override { return true; }

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

class ConsoleRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override { add_console_routes(router_); }

  std::shared_ptr<RecordingWriter> get(const std::string& path) {
    auto w = std::make_shared<RecordingWriter>();
    auto m = router_.match("GET", path);
    EXPECT_NE(m.handler, nullptr) << path;
    if (m.handler == nullptr) return w;
    HttpRequest req;
    req.method = "GET";
    req.path = path;
    req.params = m.params;
    (*m.handler)(req, w);
    return w;
  }

  gateway::Router router_;
};

const ConsoleAsset* asset(const std::string& name) {
  for (const auto& a : console_assets()) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

TEST_F(ConsoleRoutesTest, ServesThePageWithAStrictPolicy) {
  for (const std::string path : {"/console", "/console/"}) {
    auto w = get(path);
    EXPECT_EQ(w->status, 200);
    EXPECT_EQ(w->type, "text/html; charset=utf-8");
    EXPECT_EQ(w->body, std::string(asset("index.html")->bytes()));
    EXPECT_NE(w->body.find("<!doctype html>"), std::string::npos);
    const std::string csp = w->header("Content-Security-Policy");
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
    EXPECT_EQ(w->header("X-Content-Type-Options"), "nosniff");
  }
}

TEST_F(ConsoleRoutesTest, ServesEveryAssetWithItsType) {
  ASSERT_GE(console_assets().size(), 3u);
  for (const auto& a : console_assets()) {
    auto w = get(std::string("/console/") + a.name);
    EXPECT_EQ(w->status, 200) << a.name;
    EXPECT_FALSE(w->type.empty()) << a.name;
    EXPECT_EQ(w->type, console_content_type(a.name));
    EXPECT_EQ(w->body, std::string(a.bytes())) << a.name;
    EXPECT_GT(a.size, 0u) << a.name;
  }
  EXPECT_EQ(console_content_type("console.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(console_content_type("console.css"), "text/css; charset=utf-8");
  EXPECT_EQ(console_content_type("secrets.txt"), "");
}

// A module or stylesheet the page loads but the build did not embed would only show in a browser:
// catch it here from the sources' own references.
TEST_F(ConsoleRoutesTest, EverythingThePageLoadsIsEmbedded) {
  std::set<std::string> wanted;
  const std::regex page_ref(R"re((?:src|href)="/console/([^"]+)")re");
  const std::regex module_ref(R"re(from '\./([^']+)')re");
  for (const auto& a : console_assets()) {
    const std::string text(a.bytes());
    const std::regex& re = std::string(a.name) == "index.html" ? page_ref : module_ref;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
         ++it) {
      wanted.insert((*it)[1]);
    }
  }
  EXPECT_TRUE(wanted.count("console.js") && wanted.count("console.css") && wanted.count("api.js"));
  for (const auto& name : wanted)
    EXPECT_NE(asset(name), nullptr) << name << " is loaded but not embedded";
}

TEST_F(ConsoleRoutesTest, UnknownAssetIsAnErrorEnvelope) {
  auto w = get("/console/nope.js");
  EXPECT_EQ(w->status, 404);
  auto j = nlohmann::json::parse(w->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << w->body;
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_EQ(j["error"]["type"], "not_found_error");
  // Only the console's own files: no way up the tree.
  EXPECT_EQ(get("/console/..%2Fadmin_routes.cc")->status, 404);
}

TEST_F(ConsoleRoutesTest, OnlyGet) {
  auto m = router_.match("POST", "/console");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_known);
}

}  // namespace
}  // namespace quilt::admin
