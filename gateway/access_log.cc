// AccessRecord: the one access-log line per request, and request ids.
#include "gateway/access_log.h"

#include <random>
#include <vector>

#include "common/log.h"

namespace quilt::gateway {
namespace {

constexpr size_t kMaxRequestId = 128;

}  // namespace

void AccessRecord::set_tenant(std::string tenant) {
  std::lock_guard lock(mu_);
  tenant_ = std::move(tenant);
}

void AccessRecord::set_completion(CompletionRecord c) {
  std::lock_guard lock(mu_);
  completion_ = std::move(c);
  has_completion_ = true;
}

void AccessRecord::set_error(std::string cause) {
  std::lock_guard lock(mu_);
  error_ = std::move(cause);
}

void AccessRecord::write(int status, std::string_view error, bool complete) {
  std::lock_guard lock(mu_);
  if (written_) return;
  written_ = true;
  log::Level level = log::Level::kInfo;
  // An error set by the handler after a 2xx went out (inside a stream) is the server's failure.
  if (status >= 500 || (status < 400 && !error_.empty())) {
    level = log::Level::kError;
  } else if (status == 404 || status == 401) {
    level = log::Level::kDebug;
  }
  if (!log::enabled(level)) return;
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string cause = !error_.empty() ? error_ : std::string(error);
  const std::string tenant = tenant_.empty() ? "-" : tenant_;
  std::vector<log::Field> fields = {{"request_id", request_id}, {"method", method},
                                    {"route", route},           {"path", path},
                                    {"status", status},         {"tenant", tenant}};
  if (has_completion_) {
    const CompletionRecord& c = completion_;
    std::string model = c.adapter.empty() ? "-" : c.adapter;
    if (!c.adapter.empty() && c.version > 0) model += "@" + std::to_string(c.version);
    fields.insert(fields.end(), {{"adapter", model},
                                 {"prompt_tokens", c.prompt_tokens},
                                 {"completion_tokens", c.completion_tokens},
                                 {"finish_reason", c.finish_reason.empty() ? "-" : c.finish_reason},
                                 {"queue_s", c.queue_s},
                                 {"ttft_s", c.ttft_s}});
  }
  fields.emplace_back("total_s", total_s);
  if (!complete) fields.emplace_back("complete", false);  // the client left before the end
  if (!cause.empty()) fields.emplace_back("error", cause);
  log::write(level, "request", fields);
}

std::string sanitize_request_id(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (out.size() == kMaxRequestId) break;
    if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') out += static_cast<char>(c);
  }
  return out;
}

std::string new_request_id() {
  static const char* kHex = "0123456789abcdef";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  for (int half = 0; half < 2; ++half) {
    uint64_t x = rng();
    for (int i = 0; i < 16; ++i, x >>= 4) out += kHex[x & 15];
  }
  return out;
}

}  // namespace quilt::gateway
