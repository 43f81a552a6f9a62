// CompletionCall: engine events → OpenAI JSON or SSE chunks; usage, limits and metrics at the end.
#include "gateway/completion_call.h"

#include <algorithm>
#include <ctime>

#include "gateway/completion_metrics.h"
#include "gateway/http_server.h"

namespace quilt::gateway {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string random_suffix(uint64_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  uint64_t x = n * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  for (int i = 0; i < 24; ++i, x = x * 6364136223846793005ull + 1442695040888963407ull) out += kHex[x >> 60];
  return out;
}

std::string sse(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

// quilt-adapter-version: the adapter version that served the request (none for the base model).
std::vector<std::pair<std::string, std::string>> version_header(const adapters::ResolvedAdapter& a) {
  if (!a.weights) return {};
  return {{"quilt-adapter-version", std::to_string(a.version)}};
}

}  // namespace

CompletionCall::CompletionCall(Platform& p, std::shared_ptr<ResponseWriter> writer, Setup setup)
    : p_(p), writer_(std::move(writer)), s_(std::move(setup)) {
  id_ = (s_.request.chat ? "chatcmpl-" : "cmpl-") + random_suffix(p_.next_request_id.load());
  created_ = static_cast<int64_t>(std::time(nullptr));
  started_ = Clock::now();
  choices_.resize(s_.request.n);
  remaining_ = choices_.size();
}

void CompletionCall::start() {
  auto self = shared_from_this();
  for (size_t i = 0; i < choices_.size(); ++i) engine_ids_.push_back(p_.next_request_id++);
  // A client that goes away cancels every choice; the engine frees their memory at once.
  writer_->on_disconnect([self] { self->cancel_all(); });
  // The request's own timeout, never longer than the server's.
  auto timeout = p_.request_timeout;
  if (s_.request.timeout_s) {
    timeout = std::min(timeout, std::chrono::milliseconds(static_cast<int64_t>(*s_.request.timeout_s * 1000)));
    if (timeout < p_.request_timeout) own_deadline_ = started_ + timeout;
  }
  // Held while submitting: events (on the engine thread) wait until the stream's head is out,
  // and the head goes out only once the engine accepted the first request, so a request the
  // engine refuses is answered with its 4xx status, streamed or not. (Lock order: mu_, then the
  // engine's own lock; the engine never calls back while holding it.)
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < choices_.size(); ++i) {
    engine::Request r;
    r.deadline = started_ + timeout;
    r.id = engine_ids_[i];
    r.prompt = s_.prompt_ids;
    r.adapter = s_.adapter.weights;
    r.tenant = s_.tenant.id;
    r.tenant_weight = s_.tenant.weight;
    r.sampling = s_.request.sampling;
    r.prompt_logprobs = wants_prompt_logprobs();
    // n choices with one seed would be n copies: each choice gets its own stream of randomness.
    if (r.sampling.seed && i > 0) r.sampling.seed = *r.sampling.seed + i;
    r.on_event = [self, i](const engine::TokenEvent& ev) { self->on_event(i, ev); };
    Status st = p_.engine->submit(std::move(r));
    if (!st.ok()) {
      // Only the first submit can fail on validation (they are identical); later ones only when
      // the engine is stopping. Cancel what went in and answer with the error.
      for (size_t j = 0; j < i; ++j) p_.engine->cancel(engine_ids_[j]);
      failed_ = true;
      p_.limiter->release(s_.tenant.id, s_.reserved_tokens, 0);
      if (i > 0 && s_.request.stream) {
        writer_->write_chunk(sse({{"error", {{"message", st.message()}, {"type", std::string(status_code_name(st.code()))}}}}));
        writer_->write_chunk("data: [DONE]\n\n");
        writer_->end_stream();
      } else {
        send_error(*writer_, st, param_of(st));
      }
      return;
    }
    if (i == 0 && s_.request.stream) {
      auto headers = version_header(s_.adapter);
      headers.push_back({"Cache-Control", "no-cache"});
      writer_->start_stream(200, "text/event-stream", std::move(headers));
    }
  }
}

void CompletionCall::cancel_all() {
  for (uint64_t id : engine_ids_) p_.engine->cancel(id);
}

json CompletionCall::logprob_entry(const engine::TokenEvent& ev) const {
  const engine::Tokenizer* tok = p_.engine->tokenizer();
  json top = json::object();
  json top_list = json::array();
  for (const auto& t : ev.top_logprobs) {
    const std::string piece = tok->token_bytes(t.token);
    top[piece] = t.logprob;
    top_list.push_back({{"token", piece}, {"logprob", t.logprob}});
  }
  const std::string piece = tok->token_bytes(*ev.token);
  if (s_.request.chat) return {{"token", piece}, {"logprob", ev.logprob}, {"top_logprobs", top_list}};
  return {{"token", piece}, {"logprob", ev.logprob}, {"top", top}};
}

json CompletionCall::prompt_logprob_entries(const engine::TokenEvent& ev) const {
  const engine::Tokenizer* tok = p_.engine->tokenizer();
  json out = json::array();
  for (size_t i = 0; i < s_.prompt_ids.size(); ++i) {
    const std::string piece = tok->token_bytes(s_.prompt_ids[i]);
    if (i == 0 || i > ev.prompt_logprobs.size()) {
      out.push_back({{"token", piece}, {"logprob", nullptr}, {"top", nullptr}});
      continue;
    }
    const engine::PromptLogprob& lp = ev.prompt_logprobs[i - 1];
    json top = json::object();
    for (const auto& t : lp.top) top[tok->token_bytes(t.token)] = t.logprob;
    out.push_back({{"token", piece}, {"logprob", lp.logprob}, {"top", top}});
  }
  return out;
}

json CompletionCall::stream_chunk(size_t index, const std::string& text, const engine::TokenEvent* ev,
                                  const std::string& finish_reason) const {
  json choice = {{"index", index}, {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}};
  if (s_.request.chat) {
    choice["delta"] = text.empty() ? json::object() : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  if (ev && ev->token && s_.request.sampling.logprobs > 0) {
    json entry = logprob_entry(*ev);
    if (s_.request.chat) {
      choice["logprobs"] = {{"content", json::array({entry})}};
    } else {
      choice["logprobs"] = {{"tokens", {entry["token"]}}, {"token_logprobs", {entry["logprob"]}},
                            {"top_logprobs", {entry["top"]}}};
    }
  }
  if (ev && ev->token && s_.request.return_token_ids) choice["token_ids"] = {*ev->token};
  return {{"id", id_}, {"object", s_.request.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created_}, {"model", s_.model_name}, {"choices", json::array({choice})}};
}

void CompletionCall::on_event(size_t index, const engine::TokenEvent& ev) {
  std::lock_guard lock(mu_);
  if (failed_) return;
  Choice& c = choices_[index];
  const auto now = Clock::now();
  const Labels labels = {{"tenant", s_.tenant.id}, {"adapter", s_.adapter.name}};
  if (ev.token) {
    if (first_token_s_ < 0) first_token_s_ = std::chrono::duration<double>(now - started_).count();
    if (queue_s_ < 0 && ev.queue_seconds >= 0) queue_s_ = ev.queue_seconds;
    if (c.token_ids.empty()) {
      p_.metrics->observe("quilt_time_to_first_token_seconds", labels,
                          std::chrono::duration<double>(now - started_).count(), latency_buckets());
    } else {
      p_.metrics->observe("quilt_inter_token_latency_seconds", labels,
                          std::chrono::duration<double>(now - c.last_token).count(), latency_buckets());
    }
    c.last_token = now;
    json echoed = json::array();  // the prompt's entries ride on the first token's event
    if (c.token_ids.empty() && wants_prompt_logprobs()) echoed = prompt_logprob_entries(ev);
    c.token_ids.push_back(*ev.token);
    if (c.logprobs.is_null()) c.logprobs = echoed;
    if (s_.request.sampling.logprobs > 0) c.logprobs.push_back(logprob_entry(ev));
  }
  c.text += ev.text;

  if (s_.request.stream) {
    if (s_.request.echo && !c.echo_sent) {
      // The prompt first, as its own chunk, with its log-probabilities when asked for.
      json first = stream_chunk(index, s_.prompt_text, nullptr, "");
      if (wants_prompt_logprobs() && c.logprobs.is_array()) {
        json tokens = json::array(), lps = json::array(), tops = json::array();
        for (size_t i = 0; i < s_.prompt_ids.size() && i < c.logprobs.size(); ++i) {
          tokens.push_back(c.logprobs[i]["token"]);
          lps.push_back(c.logprobs[i]["logprob"]);
          tops.push_back(c.logprobs[i]["top"]);
        }
        first["choices"][0]["logprobs"] = {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}};
      }
      writer_->write_chunk(sse(first));
      c.echo_sent = true;
    }
    if (s_.request.chat && !c.role_sent) {
      json first = stream_chunk(index, "", nullptr, "");
      first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
      writer_->write_chunk(sse(first));
      c.role_sent = true;
    }
    if (!ev.text.empty() || (ev.token && !ev.finished)) {
      writer_->write_chunk(sse(stream_chunk(index, ev.text, &ev, "")));
    }
  }
  if (!ev.finished) return;

  c.done = true;
  c.completion_tokens = ev.completion_tokens;
  if (ev.finish_reason == engine::FinishReason::kError || ev.finish_reason == engine::FinishReason::kAborted) {
    if (!failed_ && ev.finish_reason == engine::FinishReason::kError) {
      failed_ = true;
      cancel_all();
      p_.limiter->release(s_.tenant.id, s_.reserved_tokens, 0);
      if (s_.access) s_.access->set_error(ev.error.message());  // a stream's status said 200
      record_outcome(/*failed=*/true);
      if (s_.request.stream) {
        writer_->write_chunk(sse({{"error", {{"message", ev.error.message()}, {"type", "internal_error"}}}}));
        writer_->write_chunk("data: [DONE]\n\n");
        writer_->end_stream();
      } else if (ev.error.code() == StatusCode::kUnavailable && own_deadline_ && now >= *own_deadline_) {
        // The client's own `timeout` ran out: its choice, not an overloaded server (was a 503).
        send_error(*writer_, 408, "the request's timeout passed before it finished", "timeout_error");
      } else {
        send_error(*writer_, ev.error);
      }
      return;
    }
    c.finish_reason = "abort";
  } else {
    c.finish_reason = engine::finish_reason_name(ev.finish_reason);
  }
  if (s_.request.stream) writer_->write_chunk(sse(stream_chunk(index, "", nullptr, c.finish_reason)));
  if (--remaining_ == 0) finish();
}

json CompletionCall::usage() const {
  int64_t completion = 0;
  for (const Choice& c : choices_) completion += c.completion_tokens;
  const int64_t prompt = static_cast<int64_t>(s_.prompt_ids.size());
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

json CompletionCall::final_body() const {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json choice = {{"index", i}, {"finish_reason", c.finish_reason}, {"logprobs", nullptr}};
    if (s_.request.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      if (s_.request.sampling.logprobs > 0) choice["logprobs"] = {{"content", c.logprobs}};
    } else {
      choice["text"] = (s_.request.echo ? s_.prompt_text : std::string()) + c.text;
      if (s_.request.sampling.logprobs > 0) {
        json tokens = json::array(), lps = json::array(), tops = json::array();
        for (const json& e : c.logprobs) {
          tokens.push_back(e["token"]);
          lps.push_back(e["logprob"]);
          tops.push_back(e["top"]);
        }
        choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}};
      }
    }
    if (s_.request.return_token_ids) choice["token_ids"] = c.token_ids;
    choices.push_back(std::move(choice));
  }
  json body = {{"id", id_}, {"object", s_.request.chat ? "chat.completion" : "text_completion"},
               {"created", created_}, {"model", s_.model_name}, {"choices", choices}, {"usage", usage()}};
  if (s_.request.return_token_ids) body["prompt_token_ids"] = s_.prompt_ids;
  return body;
}

void CompletionCall::finish() {
  const json u = usage();
  const int64_t prompt = u["prompt_tokens"], completion = u["completion_tokens"];
  p_.limiter->release(s_.tenant.id, s_.reserved_tokens, prompt * static_cast<int64_t>(choices_.size()) + completion);
  p_.usage->record(s_.tenant.id, s_.adapter.name, prompt * static_cast<int64_t>(choices_.size()), completion);
  record_outcome(/*failed=*/false);
  if (s_.request.stream) {
    if (s_.request.include_usage) {
      json last = {{"id", id_}, {"object", s_.request.chat ? "chat.completion.chunk" : "text_completion"},
                   {"created", created_}, {"model", s_.model_name}, {"choices", json::array()}, {"usage", u}};
      writer_->write_chunk(sse(last));
    }
    writer_->write_chunk("data: [DONE]\n\n");
    writer_->end_stream();
  } else {
    writer_->send(200, "application/json", final_body().dump(-1, ' ', false, json::error_handler_t::replace),
                  version_header(s_.adapter));
  }
}

void CompletionCall::record_outcome(bool failed) {
  CompletionOutcome o;
  o.tenant = s_.tenant.id;
  o.adapter = s_.adapter.name;
  o.version = s_.adapter.version;
  o.prompt_tokens = static_cast<int64_t>(s_.prompt_ids.size());
  for (const Choice& c : choices_) {
    o.completion_tokens += c.completion_tokens;
    o.finish_reasons.push_back(failed ? "error" : c.finish_reason);
  }
  o.queue_s = queue_s_;
  o.ttft_s = first_token_s_;
  o.e2e_s = std::chrono::duration<double>(Clock::now() - started_).count();
  record_completion(*p_.metrics, s_.access.get(), o);
}

}  // namespace quilt::gateway
