// libFuzzer: tokenizer.json loading and encoding.
// Input "<tokenizer.json>\xff<text>" (starting with '{'): load that tokenizer (with the demo
// model's tokenizer_config.json), then encode and decode the text. Any other input is text,
// encoded and decoded by the demo model's tokenizer and, where the shared fixtures are at hand
// (QUILT_FUZZ_REAL_TOKENIZERS=DIR), by real ones (Llama 3.1, Qwen 3, Mistral).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using quilt::engine::Tokenizer;

const std::vector<std::unique_ptr<Tokenizer>>& fixed_tokenizers() {
  static const auto tokenizers = [] {
    std::vector<std::unique_ptr<Tokenizer>> out;
    out.push_back(Tokenizer::load(QUILT_SOURCE_DIR "/examples/models/tiny-llama").value());
    if (const char* real = std::getenv("QUILT_FUZZ_REAL_TOKENIZERS")) {
      for (const char* name : {"llama3_1", "qwen3", "mistral_v01"}) {
        auto t = Tokenizer::load(fs::path(real) / name);
        if (t.ok()) out.push_back(std::move(t).value());
      }
    }
    return out;
  }();
  return tokenizers;
}

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("quilt-tokenizer-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    fs::copy_file(QUILT_SOURCE_DIR "/examples/models/tiny-llama/tokenizer_config.json",
                  d / "tokenizer_config.json", fs::copy_options::overwrite_existing);
    return d;
  }();
  return dir;
}

void exercise(const Tokenizer& t, std::string_view text) {
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = t.encode(text, special);
    (void)t.decode(ids, false);
    (void)t.decode(ids, true);
    for (int32_t id : ids) (void)t.token_bytes(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.empty() || input.front() != '{') {
    for (const auto& t : fixed_tokenizers()) exercise(*t, input);
    return 0;
  }
  const size_t split = input.find('\xff');
  const std::string_view json = input.substr(0, split);
  const std::string_view text = split == std::string_view::npos ? "" : input.substr(split + 1);
  {
    std::ofstream out(scratch_dir() / "tokenizer.json", std::ios::binary | std::ios::trunc);
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
  }
  auto t = Tokenizer::load(scratch_dir());
  if (!t.ok()) return 0;
  exercise(**t, text);
  // Ids past the vocabulary, and negative ones, are skipped, not read.
  const int32_t odd[] = {-1, (*t)->vocab_size(), (*t)->vocab_size() + 7, INT32_MAX, INT32_MIN};
  (void)(*t)->decode(odd);
  for (int32_t id : odd) (void)(*t)->token_bytes(id);
  return 0;
}
