// GPT-2's reversible map between raw bytes and printable code points (the "byte-level" alphabet).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace quilt::engine {

// Each byte of `bytes` replaced by its byte-level character (UTF-8 encoded).
std::string bytes_to_byte_level(std::string_view bytes);

// The UTF-8 text of the byte-level character of `byte`.
std::string_view byte_level_char(unsigned char byte);

// The raw bytes behind a byte-level token, or nullopt when one of its characters is outside the
// alphabet (added tokens such as "<|eot_id|> " are then used as they are, like Hugging Face does).
std::optional<std::string> byte_level_to_bytes(std::string_view token);

}  // namespace quilt::engine
