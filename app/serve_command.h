// `quilt serve`: the multi-tenant HTTP server of API.md.
#pragma once

namespace quilt::app {

// argv holds the flags after "serve". Returns the process exit code (0 after a clean drain).
int serve_command(int argc, char** argv);

}  // namespace quilt::app
