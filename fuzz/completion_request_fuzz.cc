// libFuzzer: the JSON body of /v1/completions (first byte even) or /v1/chat/completions (odd).
#include <cstddef>
#include <cstdint>
#include <string>

#include "gateway/completion_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string param;
  auto req = quilt::gateway::parse_completion_request(body, chat, &param);
  if (req.ok()) {
    // What the engine later relies on: validated ranges.
    if (req->n < 1) __builtin_trap();
  }
  return 0;
}
