// Private to admin/cli: how each subject registers its commands.
#pragma once

#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "admin/cli/client.h"

namespace quilt::admin::cli {

using Chosen = std::function<int()>;

void add_tenant_commands(CLI::App& root, Chosen& chosen);   // tenants, keys
void add_adapter_commands(CLI::App& root, Chosen& chosen);  // adapters
void add_usage_command(CLI::App& root, Chosen& chosen);     // usage

// A leaf command whose state (with its ClientOptions `client`) CLI11 fills; `run` sends it.
template <typename State>
CLI::App* add_leaf(CLI::App* group, const char* name, const char* about, const std::shared_ptr<State>& state,
                   Chosen& chosen, int (*run)(const State&)) {
  CLI::App* cmd = group->add_subcommand(name, about);
  add_client_options(cmd, state->client);
  cmd->callback([state, &chosen, run] { chosen = [state, run] { return run(*state); }; });
  return cmd;
}

}  // namespace quilt::admin::cli
