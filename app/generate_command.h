// `quilt generate`: one completion from the command line, streamed to stdout.
#pragma once

namespace quilt::app {

// argv holds the flags after "generate". Returns the process exit code.
int generate_command(int argc, char** argv);

}  // namespace quilt::app
