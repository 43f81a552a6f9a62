// Test helper: builds safetensors images in memory (and scratch directories to write them to).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace quilt::testing {

struct TestTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16"; anything else writes `raw` as is
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major; converted to dtype with round-to-nearest-even
  std::string raw = {};     // bytes for other dtypes (e.g. "I64"), for rejection tests
};

inline uint16_t float_to_bf16_bits(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40);  // stay a NaN
  const uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// Round-to-nearest-even float32 → IEEE half, including subnormals, overflow to inf, and NaN.
inline uint16_t float_to_f16_bits(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;   // NaN
  if (abs >= 0x477ff000) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000) {                       // below the smallest normal half
    const float mag = std::bit_cast<float>(abs);
    // Subnormal halves are multiples of 2^-24; nearbyint rounds half to even.
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(mag, 24)));
  }
  const uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

// The bytes of `t`'s data in its dtype.
inline std::string tensor_bytes(const TestTensor& t) {
  std::string out;
  if (t.dtype == "F32") {
    out.resize(t.data.size() * 4);
    if (!out.empty()) std::memcpy(out.data(), t.data.data(), out.size());
  } else if (t.dtype == "BF16" || t.dtype == "F16") {
    out.resize(t.data.size() * 2);
    for (size_t i = 0; i < t.data.size(); ++i) {
      const uint16_t h =
          t.dtype == "BF16" ? float_to_bf16_bits(t.data[i]) : float_to_f16_bits(t.data[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  } else {
    out = t.raw;
  }
  return out;
}

// A safetensors image: 8-byte little-endian header length, JSON header, then the data.
inline std::string make_safetensors(const std::vector<TestTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& t : tensors) {
    const std::string bytes = tensor_bytes(t);
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  return [&] {
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes
    const uint64_t n = h.size();
    std::string out(8, '\0');
    std::memcpy(out.data(), &n, 8);
    return out + h + data;
  }();
}

// An image from a raw header string and data bytes: for malformed-file tests.
inline std::string make_safetensors_raw(const std::string& header, const std::string& data,
                                        uint64_t header_len_field) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_len_field, 8);
  return out + header + data;
}

// A sequence of distinct, exactly representable (in bf16 and f16 too) test values.
inline std::vector<float> ramp(size_t n, float start = -1.0f, float step = 1.0f / 64) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i % 128);
  return v;
}

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("quilt-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  std::filesystem::path write(const std::string& name, const std::string& bytes) const {
    const auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace quilt::testing
