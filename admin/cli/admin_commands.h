// The admin client in the quilt binary: `quilt tenants|keys|adapters|usage ...`, each a call to
// a running server's HTTP API (API.md).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace quilt::admin::cli {

// Adds the admin commands to `root`; the parsed leaf sets `chosen` to run its request and return
// the exit code (0 done, 1 the server refused, 2 unreachable).
void add_admin_commands(CLI::App& root, std::function<int()>& chosen);

}  // namespace quilt::admin::cli
