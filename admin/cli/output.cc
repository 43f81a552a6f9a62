// output: tables, key/value blocks and the progress bar.
#include "admin/cli/output.h"

#include <algorithm>
#include <ctime>

namespace quilt::admin::cli {

using nlohmann::json;

std::string cell_text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const json& e : v) out += (out.empty() ? "" : ",") + cell_text(e);
    return out.empty() ? "-" : out;
  }
  return v.dump();
}

std::string time_text(const json& v) {
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) return cell_text(v);
  const std::time_t t = static_cast<std::time_t>(v.get<int64_t>());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

json value_at(const json& row, const std::string& path) {
  const json* at = &row;
  size_t start = 0;
  for (;;) {
    const size_t slash = path.find('/', start);
    const std::string key = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!at->is_object() || !at->contains(key)) return nullptr;
    at = &(*at)[key];
    if (slash == std::string::npos) return *at;
    start = slash + 1;
  }
}

std::string format_table(const std::vector<Column>& columns, const json& rows) {
  std::vector<Column> shown;
  for (const Column& c : columns) {
    bool present = rows.empty();
    for (const json& r : rows) present |= !value_at(r, c.path).is_null() || (r.is_object() && r.contains(c.path));
    if (present) shown.push_back(c);
  }
  std::vector<std::vector<std::string>> cells;
  cells.emplace_back();
  for (const Column& c : shown) cells.back().push_back(c.header);
  for (const json& r : rows) {
    cells.emplace_back();
    for (const Column& c : shown) {
      const json v = value_at(r, c.path);
      cells.back().push_back(c.time ? time_text(v) : cell_text(v));
    }
  }
  std::vector<size_t> width(shown.size(), 0);
  for (const auto& line : cells) {
    for (size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) text += std::string(width[i] - line[i].size() + 2, ' ');
    }
    out += text + "\n";
  }
  return out;
}

std::string format_object(const json& object, const std::vector<std::string>& times) {
  size_t width = 0;
  for (const auto& [key, value] : object.items()) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : object.items()) {
    const bool time = std::find(times.begin(), times.end(), key) != times.end();
    out += key + std::string(width - key.size() + 2, ' ') + (time ? time_text(value) : cell_text(value)) + "\n";
  }
  return out;
}

void ProgressBar::update(uint64_t sent, uint64_t total) {
  const int percent = total == 0 ? 100 : static_cast<int>(sent * 100 / total);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  const double mib = 1024.0 * 1024.0;
  std::fprintf(out_, "\r[%s%s] %3d%%  %.1f / %.1f MiB", std::string(filled, '#').c_str(),
               std::string(kWidth - filled, ' ').c_str(), percent, sent / mib, total / mib);
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
}

}  // namespace quilt::admin::cli
