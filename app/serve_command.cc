// serve_command: flags and config → storage, tenants, registry, engine, HTTP server; signals.
#include "app/serve_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "app/config_file.h"
#include "app/serve_settings.h"
#include "common/files.h"
#include "common/log.h"
#include "common/memory.h"

namespace quilt::app {
namespace {

// Each setting as CLI11 read it (from the command line, or the config file for what the command
// line left out); checked and applied by apply_serve_setting once parsing is done.
struct ServeOptions {
  std::vector<std::pair<std::string, CLI::Option*>> given;
  std::vector<std::string> values;  // one per setting; reserved up front, CLI11 holds pointers
  std::string config_file;          // --config
};

// The settings to apply, by name: the config file's, then the command line's over them.
// Returns an error naming the file or the setting, or "".
std::string collect_settings(const ServeOptions& options, std::map<std::string, std::string>& out) {
  if (!options.config_file.empty()) {
    std::vector<CLI::ConfigItem> items;
    try {
      std::ifstream in(options.config_file);
      if (!in) return "--config: cannot read '" + options.config_file + "'";
      items = JsonOrTomlConfig().from_config(in);
    } catch (const CLI::Error& e) {
      return options.config_file + ": " + e.what();
    }
    for (const CLI::ConfigItem& item : items) {
      if (item.name == "++" || item.name == "--") continue;  // TOML section markers
      const bool known = std::any_of(options.given.begin(), options.given.end(),
                                     [&](const auto& g) { return g.first == item.name; });
      // Settings at the top level, or in a [serve] section.
      const bool placed = item.parents.empty() || (item.parents.size() == 1 && item.parents[0] == "serve");
      if (!known || !placed) return options.config_file + ": unknown setting '" + item.fullname() + "'";
      std::string value;
      for (const std::string& v : item.inputs) value += (value.empty() ? "" : ",") + v;
      out[item.name] = value;
    }
  }
  for (const auto& [name, option] : options.given) {
    if (option->count() > 0) out[name] = option->as<std::string>();
  }
  return "";
}

int fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "quilt serve: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

// The admin key generated at first start goes to DATA-DIR/admin.key (0600), never to the log or
// the terminal. Should the file fail, the key is printed once on stdout as before: it is stored
// only as a hash, so a key nobody saw would lock the operator out.
void save_generated_admin_key(const std::filesystem::path& data_dir, const std::string& key) {
  const std::filesystem::path path = data_dir / "admin.key";
  std::string error;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = std::strerror(errno);
  } else {
    const std::string line = key + "\n";
    // fchmod: a file left by an earlier run keeps its old mode through O_CREAT.
    if (::fchmod(fd, 0600) != 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fsync(fd) != 0) {
      error = std::strerror(errno);
    }
    ::close(fd);
  }
  if (error.empty()) {
    log::info("admin key generated", {{"file", path.string()}, {"mode", "0600"}});
    return;
  }
  log::error("admin key generated but not saved; printed once on stdout",
             {{"file", path.string()}, {"error", error}});
  std::printf("admin key (shown once, store it now): %s\n", key.c_str());
}

int serve(const ServeOptions& options) {
  tune_allocator();  // before any thread starts
  ServeFlags f;
  std::map<std::string, std::string> settings;
  std::string err = collect_settings(options, settings);
  for (const ServeSetting& s : serve_settings()) {
    if (!err.empty()) break;
    if (auto it = settings.find(s.name); it != settings.end()) err = apply_serve_setting(f, s.name, it->second);
  }
  if (!err.empty()) {
    std::fprintf(stderr, "quilt serve: %s\n", err.c_str());
    return 2;
  }
  log::configure(f.log_level, f.log_format);
  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The tenant store trims the key (files end in a newline) and refuses an empty one.
  ServerConfig& config = f.config;
  // cuda sizes its one pool by --gpu-memory-fraction (0.9 unless --kv-cache-mb asks for fixed
  // sizes); cpu memory is sized by --kv-cache-mb and --lora-pool-mib alone.
  if (config.device == "cpu") {
    if (f.fraction_given) {
      std::fprintf(stderr, "quilt serve: --gpu-memory-fraction: sizes a cuda device's pool; on cpu use "
                           "--kv-cache-mb and --lora-pool-mib\n");
      return 2;
    }
  } else if (!f.fraction_given && !f.kv_cache_given) {
    config.gpu_memory_fraction = 0.9;
  }
  if (!f.admin_key_file.empty()) {
    auto key = read_file(f.admin_key_file);
    if (!key.ok()) return fail("admin key", key.status());
    config.admin_key = *key;
  } else if (const char* env = std::getenv("QUILT_ADMIN_KEY"); env && *env) {
    config.admin_key = env;
  }
  auto server = Server::start(config);
  if (!server.ok()) return fail("start", server.status());
  Server& s = **server;
  if (!s.generated_admin_key().empty()) save_generated_admin_key(config.data_dir, s.generated_admin_key());
  // The address line stays on stdout, where scripts wait for it; the log says it too.
  std::printf("quilt serving %s on http://%s:%u (device %s, data %s)\n", s.model_id().c_str(),
              config.http.host.c_str(), s.port(), config.device.c_str(), config.data_dir.c_str());
  if (s.admin_port() != 0) {
    std::printf("quilt admin, metrics and health on http://%s:%u\n", config.http.host.c_str(),
                s.admin_port());
  }
  std::fflush(stdout);
  log::info("serving", {{"model", s.model_id()}, {"host", config.http.host}, {"port", s.port()},
                        {"admin_port", s.admin_port()}, {"device", config.device},
                        {"data_dir", config.data_dir.string()}});

  // Every few seconds until SIGTERM/SIGINT: flush usage, give memory freed since back to the
  // system (common/memory.h); then drain and exit 0.
  for (;;) {
    timespec period{5, 0};
    const int sig = sigtimedwait(&signals, nullptr, &period);
    if (sig == SIGTERM || sig == SIGINT) break;
    (void)s.flush_usage();
    release_free_memory();
  }
  log::info("draining", {{"timeout_s", f.drain_timeout_s}});
  if (Status st = s.stop(std::chrono::seconds(f.drain_timeout_s)); !st.ok()) {
    log::error("stop failed", {{"error", st.message()}});
    return fail("flush", st);
  }
  log::info("stopped");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& root, Runner& chosen) {
  CLI::App* cmd = root.add_subcommand("serve", "the multi-tenant HTTP server (API.md)");
  cmd->footer(
      "The admin key comes from --admin-key-file or the environment variable QUILT_ADMIN_KEY;\n"
      "with neither, one is generated at first start into DATA-DIR/admin.key (mode 0600).\n"
      "--config FILE: a JSON object of these settings without \"--\" ({\"port\": 8080, \"threads\": 4}),\n"
      "or the same keys as TOML/INI; flags given beside it win.");
  auto options = std::make_shared<ServeOptions>();
  const auto settings = serve_settings();
  options->values.reserve(settings.size());
  for (const ServeSetting& s : settings) {
    options->values.emplace_back();
    CLI::Option* o = cmd->add_option(std::string("--") + s.name, options->values.back(), s.help);
    o->type_name(s.type);
    options->given.emplace_back(s.name, o);
  }
  // Read by collect_settings, not by CLI11's own --config: CLI11 2.1 reads config files for the
  // top-level command only.
  cmd->add_option("--config", options->config_file, "read settings from FILE (JSON, or TOML/INI)")->type_name("FILE");
  cmd->callback([options, &chosen] { chosen = [options] { return serve(*options); }; });
}

}  // namespace quilt::app
