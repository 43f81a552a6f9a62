// One completion in flight: its engine requests (n of them), and the answer they build.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/access_log.h"
#include "gateway/completion_request.h"
#include "gateway/http_types.h"
#include "gateway/platform.h"

namespace quilt::gateway {

// Owns everything a completion needs until its last engine event. Engine callbacks run on the
// engine thread; they only format and post to the ResponseWriter, never block.
class CompletionCall : public std::enable_shared_from_this<CompletionCall> {
 public:
  struct Setup {
    CompletionRequest request;
    tenants::Tenant tenant;
    adapters::ResolvedAdapter adapter;  // weights null: base model
    std::string model_name;             // echoed in responses
    std::vector<int32_t> prompt_ids;
    std::string prompt_text;            // for echo
    int64_t reserved_tokens = 0;        // taken from the tenant's token bucket at admission
    std::shared_ptr<AccessRecord> access;  // the request's access-log line; may be null
  };

  CompletionCall(Platform& p, std::shared_ptr<ResponseWriter> writer, Setup setup);

  // Submits the n engine requests. On a refusal the limiter slot is returned, the error is sent,
  // and nothing stays queued.
  void start();

 private:
  struct Choice {
    std::string text;
    std::vector<int32_t> token_ids;
    nlohmann::json logprobs;  // per-token entries (completions or chat shape)
    std::string finish_reason;
    int32_t completion_tokens = 0;
    bool done = false;
    bool role_sent = false;  // chat streams open every choice with its role, as OpenAI's do
    bool echo_sent = false;  // completion streams with echo open every choice with the prompt
    std::chrono::steady_clock::time_point last_token;
  };

  void on_event(size_t index, const engine::TokenEvent& ev);
  nlohmann::json logprob_entry(const engine::TokenEvent& ev) const;
  // echo with logprobs: one completions-shape entry per prompt token (the first with null
  // logprob and top), from the first token's event.
  nlohmann::json prompt_logprob_entries(const engine::TokenEvent& ev) const;
  bool wants_prompt_logprobs() const { return s_.request.echo && s_.request.sampling.logprobs > 0; }
  nlohmann::json stream_chunk(size_t index, const std::string& text, const engine::TokenEvent* ev,
                              const std::string& finish_reason) const;
  nlohmann::json final_body() const;
  nlohmann::json usage() const;
  void finish();  // all choices done: answer, account, release (called once, under mu_)
  void cancel_all();
  // Metrics and the access-log figures of the finished (or failed) call. Under mu_.
  void record_outcome(bool failed);

  Platform& p_;
  std::shared_ptr<ResponseWriter> writer_;
  Setup s_;
  std::string id_;
  int64_t created_;
  std::chrono::steady_clock::time_point started_;
  // When the body's `timeout` is shorter than the server's: its passing is a 408, not a 503.
  std::optional<std::chrono::steady_clock::time_point> own_deadline_;
  std::vector<uint64_t> engine_ids_;  // constant once start() submitted them

  std::mutex mu_;
  std::vector<Choice> choices_;  // guarded by mu_
  size_t remaining_ = 0;         // guarded by mu_
  bool failed_ = false;          // guarded by mu_
  double first_token_s_ = -1;    // guarded by mu_: to the first token of any choice
  double queue_s_ = -1;          // guarded by mu_: the engine's queue time of the first to run
};

}  // namespace quilt::gateway
