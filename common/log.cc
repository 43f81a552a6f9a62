// The log facade on spdlog: spdlog does level filtering, the UTC timestamp and a thread-safe sink;
// this file renders the message and fields as text (key=value) or as a JSON object's members.
#include "common/log.h"

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace quilt::log {
namespace {

// The timestamp comes from spdlog's pattern; the body (level, message, fields) is ours.
constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ %v";
constexpr const char* kJsonPattern = "{\"ts\":\"%Y-%m-%dT%H:%M:%S.%eZ\",%v}";

struct State {
  std::mutex mu;
  std::shared_ptr<spdlog::logger> logger;  // guarded by mu (the logger itself is thread-safe)
  Format format = Format::kText;           // guarded by mu
  std::atomic<int> level{static_cast<int>(Level::kInfo)};
};

State& state() {
  static State* s = new State();  // never destroyed: threads may log during static destruction
  return *s;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger> make_logger(Level level, Format format, std::ostream* out) {
  spdlog::sink_ptr sink;
  if (out) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, /*force_flush=*/true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>("quilt", std::move(sink));
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      format == Format::kJson ? kJsonPattern : kTextPattern, spdlog::pattern_time_type::utc));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::trace);  // every line: a crash must not lose the last ones
  return logger;
}

// JSON string contents: quotes, backslashes and control bytes escaped; bytes of 0x80 and above
// as \u00XX, so that a line stays valid JSON whatever a client sent.
void append_json_escaped(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

// Text values: bare when they are one plain word, else quoted with the JSON escapes (so that a
// value can never forge another field or a second line).
void append_text_value(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (unsigned char c : v) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out += v;
    return;
  }
  out += '"';
  append_json_escaped(out, v);
  out += '"';
}

}  // namespace

Result<Level> parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  return Status::InvalidArgument("log-level: expected debug, info, warn or error, got '" +
                                 std::string(name) + "'");
}

Result<Format> parse_format(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return Status::InvalidArgument("log-format: expected text or json, got '" + std::string(name) + "'");
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

std::string Field::number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("null");
}

std::string format_body(Format format, Level level, std::string_view message,
                        std::span<const Field> fields) {
  std::string out;
  out.reserve(64 + message.size() + fields.size() * 24);
  if (format == Format::kJson) {
    out += "\"level\":\"";
    out += level_name(level);
    out += "\",\"msg\":\"";
    append_json_escaped(out, message);
    out += '"';
    for (const Field& f : fields) {
      out += ",\"";
      append_json_escaped(out, f.key);
      out += "\":";
      if (f.quoted) {
        out += '"';
        append_json_escaped(out, f.value);
        out += '"';
      } else {
        out += f.value;
      }
    }
    return out;
  }
  std::string lvl(level_name(level));
  for (char& c : lvl) c = static_cast<char>(c - 'a' + 'A');
  lvl.resize(5, ' ');
  out += lvl;
  out += ' ';
  for (unsigned char c : message) out += c < 0x20 ? ' ' : static_cast<char>(c);  // one line
  for (const Field& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    if (f.quoted) {
      append_text_value(out, f.value);
    } else {
      out += f.value;
    }
  }
  return out;
}

void configure(Level level, Format format, std::ostream* out) {
  auto logger = make_logger(level, format, out);
  State& s = state();
  std::lock_guard lock(s.mu);
  s.logger = std::move(logger);
  s.format = format;
  s.level = static_cast<int>(level);
}

bool enabled(Level level) { return static_cast<int>(level) >= state().level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  write(level, message, std::span<const Field>(fields.begin(), fields.size()));
}

void write(Level level, std::string_view message, std::span<const Field> fields) {
  if (!enabled(level)) return;
  State& s = state();
  std::shared_ptr<spdlog::logger> logger;
  Format format;
  {
    std::lock_guard lock(s.mu);
    if (!s.logger) s.logger = make_logger(static_cast<Level>(s.level.load()), s.format, nullptr);
    logger = s.logger;
    format = s.format;
  }
  try {
    const std::string body = format_body(format, level, message, fields);
    logger->log(to_spdlog(level), spdlog::string_view_t(body.data(), body.size()));
  } catch (...) {
    // A log line is never worth an exception in the caller (spdlog reports its own errors).
  }
}

}  // namespace quilt::log
