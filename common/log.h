// The process's log: levels, text or JSON lines, written to stderr (spdlog behind a small facade).
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/status.h"

namespace quilt::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kText, kJson };

// "debug" | "info" | "warn" | "error"; "text" | "json". InvalidArgument otherwise.
Result<Level> parse_level(std::string_view name);
Result<Format> parse_format(std::string_view name);
std::string_view level_name(Level level);

// One key=value of a line. Strings are quoted (and escaped) where needed; numbers and booleans
// stay bare, so that JSON readers get them as numbers.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const char* v) : key(k), value(v ? v : ""), quoted(true) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), quoted(false) {}
  template <class T>
    requires(std::is_arithmetic_v<T> && !std::same_as<T, bool>)
  Field(std::string_view k, T v) : key(k), value(number(static_cast<double>(v))), quoted(false) {
    if constexpr (std::is_integral_v<T>) value = std::to_string(v);
  }

  std::string key;
  std::string value;
  bool quoted;

 private:
  static std::string number(double v);  // shortest text that reads back as v; NaN/Inf as null
};

// Replaces the process's logger: lines at `level` and above, in `format`, to stderr, or to `out`
// when given (tests; `out` must outlive every later line). Thread-safe; before the first call
// the log is info-level text on stderr.
void configure(Level level, Format format, std::ostream* out = nullptr);

// True when a line at `level` would be written: skip building costly fields otherwise.
bool enabled(Level level);

// One line: a timestamp (UTC, milliseconds), the level, `message`, then the fields. Thread-safe;
// never throws (a failing sink drops the line).
void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});
void write(Level level, std::string_view message, std::span<const Field> fields);

inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kDebug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kInfo, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kWarn, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kError, m, f); }

// The body of a line without timestamp (what write() hands to the sink); for tests.
std::string format_body(Format format, Level level, std::string_view message,
                        std::span<const Field> fields);

}  // namespace quilt::log
