// Decoders from tokenizer.json: turn the tokens of a sequence of ids back into text.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

class Decoder {
 public:
  virtual ~Decoder() = default;

  // Parses the "decoder" object; `where` names the file and field for error messages.
  // Supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, WordPiece, BPEDecoder,
  // CTC, Sequence. Others are refused with Unimplemented.
  static Result<std::unique_ptr<Decoder>> from_json(const nlohmann::json& j,
                                                    const std::string& where);

  // Hugging Face's decode_chain: rewrites the token strings of one decode call (position matters:
  // Metaspace drops the first token's "▁", Strip applies to each token). Thread-safe.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;

  // The raw bytes of one token seen mid-sequence (byte-level or <0xNN> bytes, "▁" as a space),
  // for per-token displays such as logprobs. Thread-safe.
  virtual void piece(std::string& token) const = 0;
};

}  // namespace quilt::engine
