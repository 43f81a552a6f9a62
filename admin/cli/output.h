// How the admin commands print answers: aligned tables and key/value blocks for people, the
// server's JSON untouched with --json; and the upload progress bar.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace quilt::admin::cli {

// A column: its header and where its value is in a row ("limits/max_concurrent" descends).
struct Column {
  std::string header;
  std::string path;
  bool time = false;  // unix seconds, shown as UTC "2026-12-02 14:05:09"
};

// Unix seconds as "YYYY-MM-DD HH:MM:SS" UTC; anything else (null, 0, text) as cell_text has it.
std::string time_text(const nlohmann::json& v);

// One JSON value as a table cell: strings as they are, null as "-", arrays joined with ",",
// objects as compact JSON.
std::string cell_text(const nlohmann::json& v);

// The value at `path` ("a/b") in `row`, or null.
nlohmann::json value_at(const nlohmann::json& row, const std::string& path);

// Rows under headers, columns padded to their widest cell, two spaces apart. Columns that no row
// has are left out (a field an older server does not send), unless there are no rows at all.
std::string format_table(const std::vector<Column>& columns, const nlohmann::json& rows);

// An object as "key  value" lines, keys padded to the longest; the keys named in `times` as
// time_text.
std::string format_object(const nlohmann::json& object, const std::vector<std::string>& times = {});

// "[#######      ]  58%  1.2 / 2.0 MiB" redrawn in place on `out`; finish() ends the line.
class ProgressBar {
 public:
  explicit ProgressBar(std::FILE* out) : out_(out) {}
  void update(uint64_t sent, uint64_t total);
  void finish();

 private:
  std::FILE* out_;
  int last_percent_ = -1;
  bool drawn_ = false;
};

}  // namespace quilt::admin::cli
