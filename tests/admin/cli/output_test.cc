// The admin client's human output: tables, key/value blocks, cells and times.
#include "admin/cli/output.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

namespace quilt::admin::cli {
namespace {

using nlohmann::json;

TEST(CliOutputTest, TableAlignsColumnsToTheWidestCell) {
  const json rows = json::parse(R"([{"id": "t_1", "name": "acme", "limits": {"rpm": 10}},
                                    {"id": "t_22222", "name": "b", "limits": {"rpm": 5}}])");
  EXPECT_EQ(format_table({{"ID", "id"}, {"NAME", "name"}, {"RPM", "limits/rpm"}}, rows),
            "ID       NAME  RPM\n"
            "t_1      acme  10\n"
            "t_22222  b     5\n");
}

TEST(CliOutputTest, ColumnsNoRowHasAreLeftOutUnlessThereAreNoRows) {
  const json rows = json::parse(R"([{"tenant": "a", "requests": 3}])");
  EXPECT_EQ(format_table({{"TENANT", "tenant"}, {"DAY", "day"}, {"REQUESTS", "requests"}}, rows),
            "TENANT  REQUESTS\n"
            "a       3\n");
  EXPECT_EQ(format_table({{"TENANT", "tenant"}, {"DAY", "day"}}, json::array()), "TENANT  DAY\n");
  // A field present but null is a column (a key never used: LAST_USED "-").
  EXPECT_EQ(format_table({{"ID", "id"}, {"LAST_USED", "last_used"}}, json::parse(R"([{"id": "k", "last_used": null}])")),
            "ID  LAST_USED\n"
            "k   -\n");
}

TEST(CliOutputTest, CellsAndTimes) {
  EXPECT_EQ(cell_text(json("text")), "text");
  EXPECT_EQ(cell_text(json()), "-");
  EXPECT_EQ(cell_text(json::parse(R"(["q_proj", "v_proj"])")), "q_proj,v_proj");
  EXPECT_EQ(cell_text(json::array()), "-");
  EXPECT_EQ(cell_text(json(16)), "16");
  EXPECT_EQ(cell_text(json::parse(R"({"3": 0.9})")), R"({"3":0.9})");
  EXPECT_EQ(time_text(json(1796221532)), "2026-12-02 14:25:32");
  EXPECT_EQ(time_text(json()), "-");
  EXPECT_EQ(time_text(json(0)), "0");
  EXPECT_EQ(value_at(json::parse(R"({"a": {"b": 2}})"), "a/b"), json(2));
  EXPECT_TRUE(value_at(json::parse(R"({"a": 1})"), "a/b").is_null());
}

TEST(CliOutputTest, ObjectAsKeyValueLines) {
  EXPECT_EQ(format_object(json::parse(R"({"key": "qk_1", "key_id": "k_1", "created": 1796221532})"), {"created"}),
            "created  2026-12-02 14:25:32\n"
            "key      qk_1\n"
            "key_id   k_1\n");
}

TEST(CliOutputTest, ProgressBarRedrawsInPlaceAndEndsTheLine) {
  char* text = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&text, &size);
  ProgressBar bar(out);
  bar.update(0, 200);
  bar.update(1, 200);  // still 0%: not redrawn
  bar.update(100, 200);
  bar.update(200, 200);
  bar.finish();
  std::fclose(out);
  const std::string s(text, size);
  free(text);
  EXPECT_EQ(std::count(s.begin(), s.end(), '\r'), 3) << s;
  EXPECT_NE(s.find(" 50%"), std::string::npos) << s;
  EXPECT_NE(s.find("[##############################] 100%"), std::string::npos) << s;
  EXPECT_EQ(s.back(), '\n');
}

}  // namespace
}  // namespace quilt::admin::cli
