// parse_multipart: fields and file parts, boundary forms, CRLF edge cases and malformed bodies.
#include "gateway/multipart.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>

namespace quilt::gateway {
namespace {

namespace fs = std::filesystem;

class MultipartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quilt-multipart-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "parts");
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<MultipartForm> parse(const std::string& body, const std::string& content_type,
                              std::vector<std::string> file_parts = {}) {
    const fs::path file = dir_ / "body";
    std::ofstream(file, std::ios::binary) << body;
    return parse_multipart(file, content_type, file_parts, dir_ / "parts");
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
};

std::string field(const std::string& boundary, const std::string& name, const std::string& value) {
  return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" +
         value + "\r\n";
}

TEST_F(MultipartTest, TwoFieldsAndOneFilePart) {
  const std::string b = "----QuiltBoundary7MA4YWxk";
  const std::string weights =
      "binary\r\n--not-the-boundary\r\n\r\n--" + b.substr(0, 10) + std::string("\0end", 4);
  const std::string body = field(b, "tenant", "t-1") + field(b, "shared", "true") + "--" + b +
                           "\r\nContent-Disposition: form-data; name=\"weights\"; "
                           "filename=\"adapter_model.safetensors\"\r\n"
                           "Content-Type: application/octet-stream\r\n\r\n" +
                           weights + "\r\n--" + b + "--\r\n";
  auto form = parse(body, "multipart/form-data; boundary=" + b, {"weights"});
  ASSERT_TRUE(form.ok()) << form.status().to_string();
  ASSERT_EQ(form->parts.size(), 3u);
  EXPECT_EQ(form->parts.at("tenant").value, "t-1");
  EXPECT_EQ(form->parts.at("shared").value, "true");
  EXPECT_TRUE(form->parts.at("tenant").file.empty());
  const MultipartPart& w = form->parts.at("weights");
  EXPECT_EQ(w.filename, "adapter_model.safetensors");
  EXPECT_EQ(w.content_type, "application/octet-stream");
  EXPECT_TRUE(w.value.empty());
  ASSERT_FALSE(w.file.empty());
  EXPECT_EQ(w.file.parent_path(), dir_ / "parts");
  EXPECT_EQ(read(w.file), weights);

  // The owner removes the part files with the last copy of the form.
  const fs::path part_file = w.file;
  MultipartForm copy = *form;
  form = Status::Internal("dropped");
  EXPECT_TRUE(fs::exists(part_file));
  copy = MultipartForm{};
  EXPECT_FALSE(fs::exists(part_file));
}

TEST_F(MultipartTest, QuotedBoundaryAndCaseInsensitiveHeaders) {
  const std::string b = "a:b=c/d";  // needs the quotes
  const std::string body =
      "--" + b + "\r\ncontent-disposition: Form-Data; NAME=\"cfg\"\r\n\r\n{}" + "\r\n--" + b + "--";
  auto form = parse(body, "Multipart/Form-Data; charset=utf-8; boundary=\"" + b + "\"");
  ASSERT_TRUE(form.ok()) << form.status().to_string();
  EXPECT_EQ(form->parts.at("cfg").value, "{}");
}

TEST_F(MultipartTest, CrlfEdgeCases) {
  const std::string b = "XyZ";
  const std::string body =
      "preamble to ignore\r\n"  // text before the first boundary
      "--XyZ  \t\r\n"           // transport padding
      "Content-Disposition: form-data; name=\"ends_crlf\"\r\n\r\nline\r\n\r\n"  // value + CRLF
      "--XyZ\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n"     // empty value
      "--XyZ\r\nContent-Disposition: form-data; name=\"dashes\"\r\n\r\n\r\n--Xy\r\n-\r\n"
      "--XyZ--\r\nepilogue --XyZ garbage";
  auto form = parse(body, "multipart/form-data; boundary=" + b);
  ASSERT_TRUE(form.ok()) << form.status().to_string();
  EXPECT_EQ(form->parts.at("ends_crlf").value, "line\r\n");
  EXPECT_EQ(form->parts.at("empty").value, "");
  EXPECT_EQ(form->parts.at("dashes").value, "\r\n--Xy\r\n-");
}

TEST_F(MultipartTest, LargeFilePartAcrossManyReadBlocks) {
  const std::string b = "bnd";
  std::string blob(3 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : blob) c = static_cast<char>(rng());
  // Near-delimiters everywhere, some straddling the reader's 64 KiB blocks.
  for (size_t at = 100; at + 8 < blob.size(); at += 65536 / 3) blob.replace(at, 6, "\r\n--bn");
  const std::string body =
      "--bnd\r\nContent-Disposition: form-data; name=\"weights\"; "
      "filename=\"w.bin\"\r\n\r\n" +
      blob + "\r\n--bnd\r\n" +
      "Content-Disposition: form-data; name=\"tenant\"\r\n\r\nt\r\n--bnd--";
  auto form = parse(body, "multipart/form-data; boundary=" + b, {"weights"});
  ASSERT_TRUE(form.ok()) << form.status().to_string();
  EXPECT_TRUE(read(form->parts.at("weights").file) == blob);
  EXPECT_EQ(form->parts.at("tenant").value, "t");
}

TEST_F(MultipartTest, MalformedBodiesAreInvalidArgumentAndLeaveNoFiles) {
  const std::string ct = "multipart/form-data; boundary=B";
  const std::string file_part = "--B\r\nContent-Disposition: form-data; name=\"weights\"\r\n\r\nxx";
  auto expect_invalid = [&](const std::string& body, const std::string& what) {
    auto form = parse(body, ct, {"weights"});
    ASSERT_FALSE(form.ok()) << what;
    EXPECT_TRUE(form.status().IsInvalidArgument()) << what << ": " << form.status().to_string();
    EXPECT_TRUE(fs::is_empty(dir_ / "parts")) << what;
  };
  expect_invalid(file_part, "no closing boundary");
  expect_invalid(file_part + "\r\n--B\r\n", "ends after a boundary");
  expect_invalid("", "empty body");
  expect_invalid("no boundary at all", "no boundary");
  expect_invalid("--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--", "no name");
  expect_invalid("--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--", "no disposition");
  expect_invalid("--B\r\nnot a header\r\n\r\nx\r\n--B--", "bad header line");
  expect_invalid("--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--B--", "bad quote");
  expect_invalid("--Bjunk\r\n\r\nx\r\n--B--", "text after the boundary");
  expect_invalid(field("B", "a", "1") + field("B", "a", "2") + "--B--", "duplicate part");
  expect_invalid(field("B", "big", std::string((1 << 20) + 1, 'v')) + "--B--", "field over 1 MiB");
  EXPECT_TRUE(parse(field("B", "big", std::string(1 << 20, 'v')) + "--B--", ct).ok());
}

TEST_F(MultipartTest, NotMultipartIsUnsupportedMedia) {
  const std::string body = field("B", "a", "1") + "--B--";
  for (const std::string ct :
       {"application/json", "", "multipart/mixed; boundary=B", "text/plain; boundary=B"}) {
    auto form = parse(body, ct);
    ASSERT_FALSE(form.ok()) << ct;
    EXPECT_EQ(form.status().code(), StatusCode::kUnsupportedMedia) << ct;
  }
  EXPECT_TRUE(parse_multipart("", "multipart/form-data; boundary=B", {}, dir_)
                  .status()
                  .IsInvalidArgument());           // a kFile request without a body
  auto form = parse(body, "multipart/form-data");  // multipart, but unusable
  ASSERT_FALSE(form.ok());
  EXPECT_TRUE(form.status().IsInvalidArgument());
}

}  // namespace
}  // namespace quilt::gateway
