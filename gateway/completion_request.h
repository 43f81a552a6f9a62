// The body of /v1/completions and /v1/chat/completions, parsed and validated.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "engine/request.h"

namespace quilt::gateway {

struct CompletionRequest {
  bool chat = false;
  std::string model;                          // may be empty on per-adapter routes
  std::optional<std::string> prompt_text;     // completions: a string prompt
  std::vector<int32_t> prompt_ids;            // completions: token ids given directly
  nlohmann::json messages;                    // chat
  engine::SamplingParams sampling;
  bool max_tokens_given = false;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;                 // stream_options.include_usage
  bool echo = false;
  bool return_token_ids = false;
  std::string user;
  std::optional<double> timeout_s;            // extension: this request's deadline, in seconds
};

// Parses an OpenAI-style body. `chat` selects the chat schema. A bad body is InvalidArgument whose
// message names the field, which is also written to *error_param.
Result<CompletionRequest> parse_completion_request(const std::string& body, bool chat,
                                                   std::string* error_param);

}  // namespace quilt::gateway
