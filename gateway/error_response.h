// API.md's error envelope as a JSON string, for the server's own answers and send_error().
#pragma once

#include <string>
#include <string_view>

namespace quilt::gateway {

// {"error": {"message", "type", "param", "code"}}: `param` is null when empty, `code` repeats
// `type` (a stable machine-readable string, as OpenAI clients expect something there).
// Bytes that are not valid UTF-8 (user input echoed in a message) are replaced, never thrown on.
std::string error_json(std::string_view message, std::string_view type, std::string_view param);

}  // namespace quilt::gateway
