// UTF-8 decoding, validation and lossy conversion.
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

// Expected length of a sequence from its lead byte; 0 for bytes that never start one.
size_t sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// The second byte's range is narrower than 80..BF for some leads (no overlongs, no surrogates,
// nothing past U+10FFFF); every later byte is 80..BF.
bool continuation_ok(uint8_t lead, size_t index, uint8_t byte) {
  if (index == 1) {
    switch (lead) {
      case 0xE0:
        return byte >= 0xA0 && byte <= 0xBF;
      case 0xED:
        return byte >= 0x80 && byte <= 0x9F;
      case 0xF0:
        return byte >= 0x90 && byte <= 0xBF;
      case 0xF4:
        return byte >= 0x80 && byte <= 0x8F;
      default:
        break;
    }
  }
  return byte >= 0x80 && byte <= 0xBF;
}

// Scans one unit at s[pos]: returns the number of bytes that form a valid (possibly truncated)
// prefix. *complete tells whether that prefix is a whole character.
size_t scan_unit(std::string_view s, size_t pos, bool* complete) {
  const uint8_t lead = static_cast<uint8_t>(s[pos]);
  const size_t need = sequence_length(lead);
  if (need == 0) {
    *complete = false;
    return 1;  // a lone invalid byte
  }
  size_t got = 1;
  while (got < need && pos + got < s.size() &&
         continuation_ok(lead, got, static_cast<uint8_t>(s[pos + got]))) {
    ++got;
  }
  *complete = got == need;
  return got;
}

}  // namespace

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_decode(std::string_view s, size_t pos, uint32_t* cp) {
  bool complete = false;
  const size_t n = scan_unit(s, pos, &complete);
  if (!complete) return 0;
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[pos + i])); };
  switch (n) {
    case 1:
      *cp = b(0);
      break;
    case 2:
      *cp = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
      break;
    case 3:
      *cp = ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
      break;
    default:
      *cp = ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
  return n;
}

bool utf8_is_valid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    bool complete = false;
    const size_t n = scan_unit(s, pos, &complete);
    if (!complete) return false;
    pos += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = scan_unit(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
    } else {
      utf8_append(out, kReplacementChar);
    }
    pos += n;
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view bytes) {
  // Only the last three bytes can hold the start of an unfinished character.
  const size_t from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t start = from; start < bytes.size(); ++start) {
    const size_t need = sequence_length(static_cast<uint8_t>(bytes[start]));
    if (need <= 1) continue;
    bool complete = false;
    const size_t n = scan_unit(bytes, start, &complete);
    if (!complete && start + n == bytes.size()) return start;
  }
  return bytes.size();
}

std::vector<uint32_t> utf8_to_code_points(std::string_view s) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp = 0;
    const size_t n = utf8_decode(s, pos, &cp);
    if (n == 0) {
      bool complete = false;
      pos += scan_unit(s, pos, &complete);
      cps.push_back(kReplacementChar);
    } else {
      pos += n;
      cps.push_back(cp);
    }
  }
  return cps;
}

std::string code_points_to_utf8(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < cps.size(); ++i) utf8_append(out, cps[i]);
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<uint8_t>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool is_unicode_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_python_space(uint32_t cp) {
  return is_unicode_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F);
}

}  // namespace quilt::engine
