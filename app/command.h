// The one shape every `quilt` command takes: registered on the CLI11 tree, run after parsing.
#pragma once

#include <functional>

namespace quilt::app {

// What a parsed leaf command will do; set by its CLI11 callback, called by main once parsing
// succeeded. Returns the process exit code.
using Runner = std::function<int()>;

}  // namespace quilt::app
