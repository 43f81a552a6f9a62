// `quilt serve`: the multi-tenant HTTP server of API.md.
#pragma once

#include <CLI/CLI.hpp>

#include "app/command.h"

namespace quilt::app {

// Adds `serve` and its settings to `root`; when it is the command parsed, sets `chosen` to start
// the server and return the exit code (0 after a clean drain).
void add_serve_command(CLI::App& root, Runner& chosen);

}  // namespace quilt::app
