// The byte-level alphabet, built once: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100 and up, in byte order.
#include "engine/tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

constexpr uint32_t kMaxByteLevelCodePoint = 256 + 68;

struct ByteLevelTables {
  std::array<std::string, 256> to_char;
  std::array<int16_t, kMaxByteLevelCodePoint> to_byte;  // -1 where no byte maps there

  ByteLevelTables() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? b : next++;
      utf8_append(to_char[b], cp);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables kTables;
  return kTables;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += t.to_char[b];
  return out;
}

std::string_view byte_level_char(unsigned char byte) { return tables().to_char[byte]; }

std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  const auto& t = tables();
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    uint32_t cp = 0;
    const size_t n = utf8_decode(token, pos, &cp);
    if (n == 0 || cp >= kMaxByteLevelCodePoint || t.to_byte[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(t.to_byte[cp]));
    pos += n;
  }
  return out;
}

}  // namespace quilt::engine
