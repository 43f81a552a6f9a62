// The settings of `quilt serve`: one table of names (flags without "--", config file keys) and
// the function that checks a value and applies it to the ServerConfig.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "app/server.h"
#include "common/log.h"

namespace quilt::app {

// Settings go straight into the ServerConfig; only what serve itself uses is kept beside it.
struct ServeFlags {
  ServeFlags();
  ServerConfig config;
  bool fraction_given = false;  // --gpu-memory-fraction
  bool kv_cache_given = false;  // --kv-cache-mb
  std::string admin_key_file;
  int64_t drain_timeout_s = 30;
  log::Level log_level = log::Level::kInfo;     // --log-level
  log::Format log_format = log::Format::kText;  // --log-format
};

struct ServeSetting {
  const char* name;  // the flag without "--"; also its key in a config file
  const char* type;  // shown in --help: DIR, N, S (seconds), ...
  const char* help;
};

// Every setting, in the order --help lists them. A new setting is a row here and a branch in
// apply_serve_setting.
std::span<const ServeSetting> serve_settings();

// Checks `value` for the setting `name` and applies it. Returns an error naming the setting, or "".
std::string apply_serve_setting(ServeFlags& f, const std::string& name, const std::string& value);

}  // namespace quilt::app
