// Percent-decoding of request targets: path segments and query strings.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace quilt::gateway {

// "%2F" → "/"; with `plus_is_space` (query strings, form encoding) "+" → " ". A malformed
// escape ("%G1", a trailing "%") is kept as it is rather than rejected: lenient like most servers.
std::string percent_decode(std::string_view text, bool plus_is_space);

// "a=1&b=x%20y&flag" → {a: "1", b: "x y", flag: ""}. A repeated key keeps its last value.
std::map<std::string, std::string> parse_query(std::string_view query);

}  // namespace quilt::gateway
