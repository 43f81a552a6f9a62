// admin_commands: the subjects of the admin client, each in a file of its own.
#include "admin/cli/admin_commands.h"

#include "admin/cli/commands.h"

namespace quilt::admin::cli {

void add_admin_commands(CLI::App& root, std::function<int()>& chosen) {
  add_tenant_commands(root, chosen);
  add_adapter_commands(root, chosen);
  add_usage_command(root, chosen);
}

}  // namespace quilt::admin::cli
