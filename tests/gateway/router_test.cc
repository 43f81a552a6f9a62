// Router: literal and {param} segments, trailing slashes, 404 versus 405, first match wins.
#include "gateway/router.h"

#include <gtest/gtest.h>

namespace quilt::gateway {
namespace {

Handler tagged(int* out, int tag) {
  return [out, tag](HttpRequest&, std::shared_ptr<ResponseWriter>) { *out = tag; };
}

void run(const Router::Match& m) {
  HttpRequest req;
  (*m.handler)(req, nullptr);
}

TEST(RouterTest, MatchesLiteralAndParamSegments) {
  int hit = 0;
  Router r;
  r.add("GET", "/v1/models", tagged(&hit, 1));
  r.add("POST", "/v1/adapters/{adapter}/chat/completions", tagged(&hit, 2));
  r.add("PUT", "/admin/v1/adapters/{name}", tagged(&hit, 3), BodyMode::kFile);

  auto m = r.match("GET", "/v1/models");
  ASSERT_NE(m.handler, nullptr);
  run(m);
  EXPECT_EQ(hit, 1);
  EXPECT_TRUE(m.params.empty());

  m = r.match("POST", "/v1/adapters/sql-lora/chat/completions");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("adapter"), "sql-lora");
  EXPECT_EQ(m.body, BodyMode::kMemory);

  m = r.match("PUT", "/admin/v1/adapters/my%20adapter");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("name"), "my adapter");  // decoded
  EXPECT_EQ(m.body, BodyMode::kFile);
}

TEST(RouterTest, TrailingAndDoubledSlashesAreInsignificant) {
  int hit = 0;
  Router r;
  r.add("GET", "/v1/models/", tagged(&hit, 1));
  EXPECT_NE(r.match("GET", "/v1/models").handler, nullptr);
  EXPECT_NE(r.match("GET", "/v1/models/").handler, nullptr);
  EXPECT_NE(r.match("GET", "//v1//models").handler, nullptr);
  EXPECT_EQ(r.match("GET", "/v1/models/x").handler, nullptr);
  EXPECT_EQ(r.match("GET", "/v1").handler, nullptr);
}

TEST(RouterTest, AParamNeverMatchesAnEmptySegment) {
  int hit = 0;
  Router r;
  r.add("GET", "/a/{x}/b", tagged(&hit, 1));
  EXPECT_EQ(r.match("GET", "/a//b").handler, nullptr);
  EXPECT_EQ(r.match("GET", "/a/b").handler, nullptr);
  auto m = r.match("GET", "/a/%2F/b");  // an encoded slash is a value, not a separator
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("x"), "/");
}

TEST(RouterTest, KnownPathWithAnotherMethodIs405WithTheAllowedMethods) {
  int hit = 0;
  Router r;
  r.add("GET", "/admin/v1/tenants/{id}", tagged(&hit, 1));
  r.add("PATCH", "/admin/v1/tenants/{id}", tagged(&hit, 2));
  r.add("DELETE", "/admin/v1/tenants/{id}", tagged(&hit, 3));

  auto m = r.match("POST", "/admin/v1/tenants/t1");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_known);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"GET", "PATCH", "DELETE"}));

  m = r.match("POST", "/admin/v1/nothing");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_FALSE(m.path_known);

  m = r.match("DELETE", "/admin/v1/tenants/t1");
  ASSERT_NE(m.handler, nullptr);
  run(m);
  EXPECT_EQ(hit, 3);
}

TEST(RouterTest, FirstMatchWins) {
  int hit = 0;
  Router r;
  r.add("GET", "/admin/v1/adapters/{name}", tagged(&hit, 1));
  r.add("GET", "/admin/v1/adapters/special", tagged(&hit, 2));
  auto m = r.match("GET", "/admin/v1/adapters/special");
  ASSERT_NE(m.handler, nullptr);
  run(m);
  EXPECT_EQ(hit, 1);
  EXPECT_EQ(m.params.at("name"), "special");
}

TEST(RouterTest, MethodsAreCaseSensitive) {
  int hit = 0;
  Router r;
  r.add("GET", "/healthz", tagged(&hit, 1));
  auto m = r.match("get", "/healthz");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_known);
}

}  // namespace
}  // namespace quilt::gateway
