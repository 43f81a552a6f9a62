// Python string methods on UTF-8, code point by code point.
#include "engine/tokenizer/jinja_strings.h"

#include <algorithm>

#include "engine/tokenizer/utf8.h"

namespace quilt::engine::jinja {
namespace {

uint32_t upper_cp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0x3C2) return 0x3A3;  // final sigma
  if (c >= 0x3B1 && c <= 0x3C9) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

uint32_t lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

bool is_cased(uint32_t c) { return upper_cp(c) != c || lower_cp(c) != c || c == 0xDF; }

template <typename F>
std::string map_cps(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  const std::vector<uint32_t> cps = utf8_to_code_points(s);
  for (size_t i = 0; i < cps.size(); ++i) utf8_append(out, f(cps[i], i));
  return out;
}

// Byte offset of each code point, plus the end.
std::vector<size_t> cp_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

}  // namespace

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, StripSide side) {
  const std::vector<uint32_t> cps = utf8_to_code_points(s);
  std::vector<uint32_t> set;
  if (chars) set = utf8_to_code_points(*chars);
  auto strip = [&](uint32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_python_space(c);
  };
  size_t begin = 0, end = cps.size();
  if (side != StripSide::kRight) {
    while (begin < end && strip(cps[begin])) ++begin;
  }
  if (side != StripSide::kLeft) {
    while (end > begin && strip(cps[end - 1])) --end;
  }
  return code_points_to_utf8(cps, begin, end);
}

std::string py_upper(std::string_view s) {
  return map_cps(s, [](uint32_t c, size_t) { return upper_cp(c); });
}

std::string py_lower(std::string_view s) {
  return map_cps(s, [](uint32_t c, size_t) { return lower_cp(c); });
}

std::string py_capitalize(std::string_view s) {
  return map_cps(s, [](uint32_t c, size_t i) { return i == 0 ? upper_cp(c) : lower_cp(c); });
}

std::string py_title(std::string_view s) {
  bool previous_cased = false;
  return map_cps(s, [&](uint32_t c, size_t) {
    const uint32_t out = previous_cased ? lower_cp(c) : upper_cp(c);
    previous_cased = is_cased(c);
    return out;
  });
}

std::string jinja_title(std::string_view s) {
  // Jinja splits at runs of [-\s({[<] and capitalizes the first character of each part.
  bool word_start = true;
  return map_cps(s, [&](uint32_t c, size_t) {
    const bool separator =
        c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_python_space(c);
    const uint32_t out = separator ? c : word_start ? upper_cp(c) : lower_cp(c);
    word_start = separator;
    return out;
  });
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t at = s.find(*sep, pos);
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(pos, at - pos));
        pos = at + sep->size();
      }
      parts.emplace_back(s.substr(pos));
      return parts;
    }
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t at = s.rfind(*sep, end - sep->size());
      if (at == std::string_view::npos) break;
      parts.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Whitespace splitting: runs of whitespace separate, and there are no empty parts.
  const std::vector<uint32_t> cps = utf8_to_code_points(s);
  const size_t n = cps.size();
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < n && is_python_space(cps[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        size_t end = n;
        while (end > i && is_python_space(cps[end - 1])) --end;
        parts.push_back(code_points_to_utf8(cps, i, end));
        break;
      }
      size_t j = i;
      while (j < n && !is_python_space(cps[j])) ++j;
      parts.push_back(code_points_to_utf8(cps, i, j));
      i = j;
    }
    return parts;
  }
  size_t i = n;
  while (true) {
    while (i > 0 && is_python_space(cps[i - 1])) --i;
    if (i == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
      size_t begin = 0;
      while (begin < i && is_python_space(cps[begin])) ++begin;
      parts.push_back(code_points_to_utf8(cps, begin, i));
      break;
    }
    size_t j = i;
    while (j > 0 && !is_python_space(cps[j - 1])) --j;
    parts.push_back(code_points_to_utf8(cps, j, i));
    i = j;
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to,
                       int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    const std::vector<size_t> offsets = cp_offsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += s.substr(offsets[i], offsets[i + 1] - offsets[i]);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(from, pos);
    if (at == std::string_view::npos) break;
    out += s.substr(pos, at - pos);
    out += to;
    pos = at + from.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

int64_t py_count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(utf8_length(s)) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos;
       pos = s.find(sub, pos + sub.size())) {
    ++n;
  }
  return n;
}

int64_t py_find(std::string_view s, std::string_view sub, bool from_right) {
  const size_t at = from_right ? s.rfind(sub) : s.find(sub);
  if (at == std::string_view::npos) return -1;
  return static_cast<int64_t>(utf8_length(s.substr(0, at)));
}

bool py_isspace(std::string_view s) {
  const std::vector<uint32_t> cps = utf8_to_code_points(s);
  return !cps.empty() && std::all_of(cps.begin(), cps.end(), is_python_space);
}

bool py_isdigit(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool py_islower(std::string_view s) {
  bool any = false;
  for (uint32_t c : utf8_to_code_points(s)) {
    if (upper_cp(c) != c) any = true;
    if (lower_cp(c) != c) return false;
  }
  return any;
}

bool py_isupper(std::string_view s) {
  bool any = false;
  for (uint32_t c : utf8_to_code_points(s)) {
    if (lower_cp(c) != c) any = true;
    if (upper_cp(c) != c) return false;
  }
  return any;
}

}  // namespace quilt::engine::jinja
