// Python str operations over UTF-8 text, for the chat-template interpreter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quilt::engine::jinja {

enum class StripSide { kBoth, kLeft, kRight };
// str.strip / lstrip / rstrip; `chars` nullopt strips whitespace (str.isspace).
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, StripSide side);

// Case mapping covers ASCII, Latin-1, Greek and Cyrillic letters; other scripts are unchanged.
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);     // str.title()
std::string jinja_title(std::string_view s);  // the |title filter (splits at spaces, -, brackets)

// str.split(sep, maxsplit) / rsplit: sep nullopt splits on whitespace runs. sep must not be empty.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit, bool from_right);
// str.replace(old, new, count); count < 0 replaces all.
std::string py_replace(std::string_view s, std::string_view from, std::string_view to,
                       int64_t count);
// Number of non-overlapping occurrences (str.count).
int64_t py_count(std::string_view s, std::string_view sub);
// str.find as a code-point index, -1 when absent.
int64_t py_find(std::string_view s, std::string_view sub, bool from_right);

bool py_isspace(std::string_view s);
bool py_isdigit(std::string_view s);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

}  // namespace quilt::engine::jinja
