// The admin client's transport: server URLs, encoding, multipart bodies, the local sha256, and an
// unreachable server reported as Unavailable.
#include "admin/cli/http_client.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "admin/cli/multipart.h"
#include "admin/cli/sha256_file.h"

namespace quilt::admin::cli {
namespace {

TEST(CliHttpClientTest, ParsesServerUrls) {
  auto u = parse_server_url("http://127.0.0.1:8080");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->base_path, "");
  u = parse_server_url("http://quilt.internal/prefix/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "quilt.internal");
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->base_path, "/prefix");
  u = parse_server_url("http://[::1]:9000");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "9000");
  for (const char* bad : {"https://x", "127.0.0.1:8080", "http://", "http://h:99999", "http://h:8o", "http://[::1"}) {
    auto b = parse_server_url(bad);
    EXPECT_FALSE(b.ok()) << bad;
    if (!b.ok()) {
      EXPECT_NE(b.status().message().find(bad), std::string::npos) << b.status().message();
    }
  }
}

TEST(CliHttpClientTest, UrlEncodeKeepsUnreservedOnly) {
  EXPECT_EQ(url_encode("sql-writer_1.0~"), "sql-writer_1.0~");
  EXPECT_EQ(url_encode("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
}

class CliFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("quilt-cli-files-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return dir_ / name;
  }
  std::filesystem::path dir_;
};

TEST_F(CliFilesTest, Sha256OfAFile) {
  auto h = sha256_file(write("abc", "abc"));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  h = sha256_file(write("empty", ""));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  h = sha256_file(dir_ / "missing");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("missing"), std::string::npos);
}

TEST_F(CliFilesTest, MultipartStreamsFilesBetweenItsParts) {
  const auto weights = write("w.bin", std::string("\0\1\2", 3));
  auto body = build_multipart({{"tenant", "t_1"}}, {{"weights", weights}});
  ASSERT_TRUE(body.ok());
  const std::string boundary = body->content_type.substr(body->content_type.find("boundary=") + 9);
  ASSERT_EQ(body->pieces.size(), 3u);  // head, the file, tail
  EXPECT_EQ(body->pieces[1].path, weights);
  EXPECT_EQ(body->pieces[1].size, 3u);
  EXPECT_EQ(body->pieces[0].data, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"tenant\"\r\n\r\nt_1\r\n--" +
                                      boundary +
                                      "\r\nContent-Disposition: form-data; name=\"weights\"; filename=\"w.bin\"\r\n"
                                      "Content-Type: application/octet-stream\r\n\r\n");
  EXPECT_EQ(body->pieces[2].data, "\r\n--" + boundary + "--\r\n");
  auto missing = build_multipart({}, {{"weights", dir_ / "nope.safetensors"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.safetensors"), std::string::npos);
}

TEST(CliHttpClientTest, AnUnreachableServerIsUnavailable) {
  // Port 1 (tcpmux): nothing listens there on a test machine.
  auto u = parse_server_url("http://127.0.0.1:1");
  ASSERT_TRUE(u.ok());
  HttpClient client(*u, "");
  auto r = client.send("GET", "/admin/v1/tenants");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("cannot connect to http://127.0.0.1:1"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace quilt::admin::cli
