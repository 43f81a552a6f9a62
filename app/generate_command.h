// `quilt generate`: one completion from the command line, streamed to stdout.
#pragma once

#include <CLI/CLI.hpp>

#include "app/command.h"

namespace quilt::app {

// Adds `generate` to `root`; when it is the command parsed, sets `chosen` to run it and return
// the exit code.
void add_generate_command(CLI::App& root, Runner& chosen);

}  // namespace quilt::app
