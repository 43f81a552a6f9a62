// The log facade: level filtering, the text and JSON line shapes, escaping that keeps one line.
#include "common/log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace quilt::log {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { configure(Level::kInfo, Format::kText); }  // back to stderr
  std::ostringstream out_;
};

TEST_F(LogTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*parse_level("debug"), Level::kDebug);
  EXPECT_EQ(*parse_level("warn"), Level::kWarn);
  EXPECT_EQ(*parse_level("error"), Level::kError);
  EXPECT_FALSE(parse_level("warning").ok());
  EXPECT_FALSE(parse_level("").ok());
  EXPECT_EQ(*parse_format("json"), Format::kJson);
  EXPECT_FALSE(parse_format("xml").ok());
}

TEST_F(LogTest, FiltersBelowTheLevel) {
  configure(Level::kWarn, Format::kText, &out_);
  debug("d");
  info("i");
  warn("w");
  error("e");
  EXPECT_FALSE(enabled(Level::kInfo));
  EXPECT_TRUE(enabled(Level::kError));
  auto lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_NE(lines[0].find("WARN  w"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("ERROR e"), std::string::npos) << lines[1];
}

TEST_F(LogTest, TextLineHasTimestampLevelMessageAndFields) {
  configure(Level::kDebug, Format::kText, &out_);
  info("request", {{"id", "abc"}, {"status", 200}, {"ttft_s", 0.25}, {"tenant", "a b"}, {"ok", true}});
  auto lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  const std::string& l = lines[0];
  // 2026-12-02T14:18:00.123Z INFO  request ...
  ASSERT_GE(l.size(), 25u);
  EXPECT_EQ(l[4], '-');
  EXPECT_EQ(l[10], 'T');
  EXPECT_EQ(l[23], 'Z');
  EXPECT_NE(l.find(" INFO  request id=abc status=200 ttft_s=0.25 tenant=\"a b\" ok=true"),
            std::string::npos)
      << l;
}

TEST_F(LogTest, JsonLineIsOneObjectWithTypedFields) {
  configure(Level::kInfo, Format::kJson, &out_);
  info("request", {{"id", "x\"y\n"}, {"status", 503}, {"total_s", 1.5}, {"path", "/v1/\x01\xff"}});
  auto lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  nlohmann::json j = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << lines[0];
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "request");
  EXPECT_EQ(j["id"], "x\"y\n");
  EXPECT_EQ(j["status"], 503);
  EXPECT_DOUBLE_EQ(j["total_s"].get<double>(), 1.5);
  EXPECT_TRUE(j["path"].is_string());
  const std::string ts = j["ts"];
  EXPECT_EQ(ts.size(), 24u) << ts;
  EXPECT_EQ(ts.back(), 'Z');
}

TEST_F(LogTest, ValuesCannotForgeLinesOrFields) {
  configure(Level::kInfo, Format::kText, &out_);
  info("line\nbreak", {{"v", "a\nlevel=error x=\"y\""}});
  auto lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_NE(lines[0].find("v=\"a\\nlevel=error x=\\\"y\\\"\""), std::string::npos) << lines[0];
}

TEST_F(LogTest, NonFiniteNumbersAreNull) {
  const std::vector<Field> fields = {{"x", 1.0 / 0.0}};
  EXPECT_EQ(format_body(Format::kJson, Level::kError, "m", fields),
            "\"level\":\"error\",\"msg\":\"m\",\"x\":null");
}

}  // namespace
}  // namespace quilt::log
