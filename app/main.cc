// quilt: the one executable. Commands: generate, serve, and the admin client (tenants, keys,
// adapters, usage) that talks to a running server over its HTTP API.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "app/command.h"
#include "app/generate_command.h"
#include "app/quilt_version.h"
#ifdef QUILT_WITH_PLATFORM
#include "admin/cli/admin_commands.h"
#include "app/serve_command.h"
#endif

namespace {

// The deepest command CLI11 had entered, and its path ("quilt serve") for messages.
const CLI::App& deepest(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands()) return deepest(*sub);
  return app;
}
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* sub : app.get_subcommands()) return path + " " + command_path(*sub);
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Quilt: multi-tenant LoRA serving on one shared base model.", "quilt");
  app.set_version_flag("--version", std::string("quilt ") + QUILT_VERSION + " (commit " + QUILT_GIT_COMMIT + ")");
  app.require_subcommand(1);
  quilt::app::Runner chosen;
  quilt::app::add_generate_command(app, chosen);
#ifdef QUILT_WITH_PLATFORM
  quilt::app::add_serve_command(app, chosen);
  quilt::admin::cli::add_admin_commands(app, chosen);
#else
  app.add_subcommand("serve", "the HTTP server (not in this build: configured with -DQUILT_PLATFORM=OFF)")
      ->callback([&chosen] {
        chosen = [] {
          std::fprintf(stderr, "quilt: this build has no server (configured with -DQUILT_PLATFORM=OFF)\n");
          return 2;
        };
      });
#endif
  // Set last: subcommands inherit the footer of their parent at creation.
  app.footer("Run `quilt COMMAND --help` for a command's flags.");
  if (argc < 2) {
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    const std::string path = command_path(app);
    std::string message = e.what();
    // "quilt bogus": CLI11 reports the missing subcommand; the word it did not know says more.
    const CLI::App& last = deepest(app);
    if (const auto rest = last.remaining(); !rest.empty() && last.get_require_subcommand_min() > 0 &&
                                             last.get_subcommands().empty() && rest[0][0] != '-') {
      message = "unknown command '" + rest[0] + "'";
    }
    std::fprintf(stderr, "%s: %s\nRun `%s --help` for more information.\n", path.c_str(), message.c_str(), path.c_str());
    return 2;
  }
  return chosen ? chosen() : 2;
}
