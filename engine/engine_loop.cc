// The engine thread: take new requests and cancels, schedule, run one step, emit tokens.
#include <algorithm>
#include <chrono>
#include <set>
#include <unordered_set>

#include "engine/engine_core.h"
#include "engine/scheduler/layout_builder.h"

namespace quilt::engine {
namespace {

void send_final(Sequence& seq, FinishReason reason, Status error = Status::OK()) {
  TokenEvent ev;
  ev.request_id = seq.request.id;
  if (reason != FinishReason::kAborted && reason != FinishReason::kError) {
    if (seq.decoder) ev.text = seq.stops.push(seq.decoder->finish());
    if (!seq.stops.matched()) ev.text += seq.stops.finish();
  }
  ev.finished = true;
  ev.finish_reason = reason;
  ev.error = std::move(error);
  ev.prompt_tokens = seq.num_prompt;
  ev.completion_tokens = seq.num_generated();
  seq.request.on_event(ev);
}

// Downloads the logit rows after the sampling ones (layout_builder puts the prompt positions of
// requests that want prompt log-probabilities there, in item order) a few at a time, and scores
// each prompt token against its row. Runs before the step's num_computed updates.
Status gather_prompt_logprobs(Backend& backend, const Tensor& logits, size_t first_row,
                              const std::vector<StepPlan::Item>& items, int64_t vocab,
                              std::vector<float>& scratch) {
  constexpr int64_t kRowsPerCopy = 32;  // bounds the host buffer whatever the prompt's length
  int64_t row = static_cast<int64_t>(first_row);
  int64_t copied_from = 0, copied_to = 0;  // rows [from, to) are in scratch
  for (const StepPlan::Item& item : items) {
    Sequence& seq = *item.seq;
    const auto [first, last] = prompt_logprob_positions(seq, item.count);
    for (int32_t pos = first; pos < last; ++pos, ++row) {
      if (row >= copied_to) {
        Tensor rows = logits;
        rows.data = logits.as<float>() + row * vocab;
        rows.rows = std::min(kRowsPerCopy, logits.rows - row);
        scratch.resize(static_cast<size_t>(rows.rows * vocab));
        QUILT_RETURN_IF_ERROR(backend.download(rows, scratch));
        copied_from = row;
        copied_to = row + rows.rows;
      }
      const std::span<const float> r(scratch.data() + (row - copied_from) * vocab, static_cast<size_t>(vocab));
      seq.prompt_logprobs.push_back(score_token(r, seq.tokens[pos + 1], seq.request.sampling.logprobs));
    }
    if (last > first) seq.prompt_logprobs_done = last;
  }
  return Status::OK();
}

bool is_eos(const ModelConfig& cfg, int32_t token) {
  return std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), token) != cfg.eos_token_ids.end();
}

}  // namespace

// Runs the model over one planned step and hands each sampled token to its request.
void Engine::run_step(StepPlan& plan) {
  Core& core = *core_;
  const auto started = std::chrono::steady_clock::now();
  // The first step that reads an adapter is ordered after its load here (on cuda the stream
  // waits, the host does not); a load that failed ends only the requests of that adapter.
  std::vector<std::pair<uint64_t, Status>> failed;
  for (auto it = plan.items.begin(); it != plan.items.end();) {
    Sequence& seq = *it->seq;
    if (seq.has_adapter_slot) {
      if (Status s = core.adapters->ready(seq.adapter_slot); !s.ok()) {
        failed.emplace_back(seq.request.id, std::move(s));
        it = plan.items.erase(it);
        continue;
      }
    }
    ++it;
  }
  for (auto& [id, s] : failed) {
    if (auto seq = core.retire(id)) send_final(*seq, FinishReason::kError, std::move(s));
  }
  if (plan.items.empty()) return;
  StepLayout layout = build_step_layout(plan, options_.block_size, *core.adapters);
  // Sampling runs where the logits are (on the device for cuda): one spec per sampling row, in
  // the layout's order, each with its sequence's own draw.
  std::vector<SampleSpec>& specs = core.specs;
  specs.clear();
  for (const StepPlan::Item& item : plan.items) {
    if (item.samples) specs.push_back(item.seq->sampler.next_spec());
  }
  core.sampled.resize(specs.size());
  Tensor logits;
  Result<Tensor> out = core.backend->run_step(
      layout, [&](const StepLayout& l) { return core.model->forward(l); }, options_.decode_graphs);
  Status st = out.status();
  if (st.ok()) logits = *out;
  if (st.ok()) st = core.backend->sample(logits.head(static_cast<int64_t>(specs.size())), specs, core.sampled);
  if (st.ok() && logits.rows > static_cast<int64_t>(specs.size())) {
    st = gather_prompt_logprobs(*core.backend, logits, specs.size(), plan.items, config_.vocab_size,
                                core.prompt_logits);
  }
  if (!st.ok()) {
    // A failed step fails the requests in it, never the engine.
    for (const StepPlan::Item& item : plan.items) {
      if (auto seq = core.retire(item.seq->request.id)) send_final(*seq, FinishReason::kError, st);
    }
    return;
  }

  const int64_t vocab = config_.vocab_size;
  size_t row = 0;
  std::vector<float>& captured = core.logits;
  uint64_t generated = 0;
  std::vector<uint64_t> finished;
  for (const StepPlan::Item& item : plan.items) {
    Sequence& seq = *item.seq;
    if (seq.queue_seconds < 0) seq.queue_seconds = std::chrono::duration<double>(started - seq.arrived).count();
    seq.num_computed += item.count;
    if (!item.samples) continue;
    SampledToken& s = core.sampled[row];
    seq.tokens.push_back(s.token);
    ++generated;

    TokenEvent ev;
    ev.request_id = seq.request.id;
    ev.token = s.token;
    ev.logprob = s.logprob;
    ev.queue_seconds = seq.queue_seconds;
    for (const auto& [id, lp] : s.top) ev.top_logprobs.push_back({id, lp});
    ev.prompt_logprobs = std::move(seq.prompt_logprobs);  // gathered over the prefill, sent once
    seq.prompt_logprobs.clear();
    if (seq.request.capture_logits && !seq.logits_sent) {
      // Tests and debugging only: the one row this request wants leaves the device.
      Tensor one = logits;
      one.data = logits.as<float>() + static_cast<int64_t>(row) * vocab;
      one.rows = 1;
      captured.resize(static_cast<size_t>(vocab));
      if (core.backend->download(one, captured).ok()) ev.logits = captured;
      seq.logits_sent = true;
    }
    ++row;
    if (seq.decoder) ev.text = seq.stops.push(seq.decoder->push(s.token));
    FinishReason reason = FinishReason::kNone;
    if (seq.stops.matched() || (!seq.request.sampling.ignore_eos && is_eos(config_, s.token))) {
      reason = FinishReason::kStop;
    } else if (seq.num_generated() >= seq.request.sampling.max_tokens) {
      reason = FinishReason::kLength;
    }
    seq.request.on_event(ev);
    if (reason != FinishReason::kNone) {
      send_final(seq, reason);
      finished.push_back(seq.request.id);
    }
  }
  for (uint64_t id : finished) core.retire(id);

  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  std::lock_guard lock(mu_);
  ++stats_.steps;
  stats_.step_seconds_total += took.count();
  stats_.tokens_computed += layout.num_tokens();
  stats_.tokens_generated += generated;
  stats_.last_batch_tokens = layout.num_tokens();
}

// Starts the loads of adapters that waiting requests need, in queue order, before their turn:
// the step that admits them then only orders itself after the copy. Room comes from free pages
// or idle adapters no waiting request wants; an adapter that does not fit now is tried again
// next time round.
void Engine::prefetch_adapters() {
  Core& core = *core_;
  std::unordered_set<const LoraWeights*> wanted;
  std::vector<Sequence*> todo;  // the first waiting sequence of each adapter
  core.scheduler->for_each_waiting([&](Sequence& s) {
    if (!s.request.adapter || s.has_adapter_slot) return;
    if (wanted.insert(s.request.adapter.get()).second) todo.push_back(&s);
  });
  const auto is_wanted = [&](const LoraWeights* w) { return wanted.count(w) > 0; };
  std::vector<std::pair<uint64_t, Status>> failed;
  int32_t tries = 0;  // bounds the work per step when many adapters wait and none fits
  for (Sequence* s : todo) {
    const bool resident = core.adapters->is_resident(s->request.adapter.get());
    if (!resident && ++tries > options_.max_adapter_slots) break;
    // In one pool, a block for each running sequence stays free: KV growth would evict the
    // prefetched adapter again at once.
    const int32_t keep_free = core.adapters->shares_units() ? core.scheduler->num_running() : 0;
    Result<bool> started = core.adapters->prefetch(s->request.adapter, is_wanted, keep_free);
    if (!started.ok()) failed.emplace_back(s->request.id, started.status());
  }
  for (auto& [id, s] : failed) {
    if (auto seq = core.retire(id)) send_final(*seq, FinishReason::kError, std::move(s));
  }
}

void Engine::publish_stats() {
  const Core& core = *core_;
  std::lock_guard lock(mu_);
  stats_.waiting = core.scheduler->num_waiting();
  stats_.running = core.scheduler->num_running();
  stats_.preemptions = core.scheduler->num_preemptions();
  stats_.out_of_memory_finishes = core.scheduler->num_out_of_memory();
  stats_.adapter_blocks = core.adapters->shares_units() ? core.adapters->units_in_use() : 0;
  stats_.kv_blocks_used = core.kv_blocks->num_used() - stats_.adapter_blocks;
  stats_.adapters_resident = core.adapters->num_resident();
  stats_.adapter_loads = core.adapters->num_loads();
  stats_.adapter_evictions = core.adapters->num_evictions();
  stats_.adapter_prefetches = core.adapters->num_prefetches();
  stats_.adapter_load_waits = core.adapters->num_load_waits();
  const StepGraphStats graphs = core.backend->step_graph_stats();
  stats_.graph_captures = graphs.captures;
  stats_.graph_replays = graphs.replays;
  stats_.graph_fallbacks = graphs.fallbacks;
  stats_.deadlines_tracked = core.deadlines.size();
  resident_ = core.adapters->resident_names();
  // Distinct adapters first (pointers), names only for those: a step's batch shares few.
  auto names = [](std::set<const LoraWeights*>& adapters, std::vector<std::string>& out) {
    std::set<std::string> unique;
    for (const LoraWeights* w : adapters) unique.insert(w->name.substr(0, w->name.find('@')));
    out.assign(unique.begin(), unique.end());
  };
  std::set<const LoraWeights*> running, waiting;
  core.scheduler->for_each_running([&](Sequence& s) {
    if (s.request.adapter) running.insert(s.request.adapter.get());
  });
  core.scheduler->for_each_waiting([&](Sequence& s) {
    if (s.request.adapter) waiting.insert(s.request.adapter.get());
  });
  names(running, stats_.running_adapters);
  names(waiting, stats_.waiting_adapters);
}

void Engine::run() {
  Core& core = *core_;
  Scheduler& scheduler = *core.scheduler;
  auto& deadlines = core.deadlines;

  for (;;) {
    std::vector<Request> inbox;
    std::vector<uint64_t> cancels;
    std::vector<std::string> evictions;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] {
        return stopping_ || !inbox_.empty() || !cancels_.empty() || !evictions_.empty() ||
               !scheduler.idle();
      });
      if (stopping_) break;
      inbox.swap(inbox_);
      cancels.swap(cancels_);
      evictions.swap(evictions_);
    }
    for (const std::string& name : evictions) {
      core.adapters->evict_idle([&](const LoraWeights& w) {
        return w.name == name || w.name.rfind(name + "@", 0) == 0;
      });
    }
    for (Request& r : inbox) {
      if (r.deadline) deadlines.emplace(*r.deadline, r.id);
      scheduler.add(std::make_unique<Sequence>(std::move(r), tokenizer_.get()));
    }
    for (uint64_t id : cancels) {
      if (std::unique_ptr<Sequence> seq = core.retire(id)) send_final(*seq, FinishReason::kAborted);
    }

    const auto now = std::chrono::steady_clock::now();
    while (!deadlines.empty() && deadlines.begin()->first <= now) {
      const uint64_t id = deadlines.begin()->second;
      std::unique_ptr<Sequence> seq = core.retire(id);
      if (!seq) {
        deadlines.erase(deadlines.begin());  // not live (a duplicate id): nothing to end
        continue;
      }
      send_final(*seq, FinishReason::kError, Status::Unavailable("the request's deadline passed"));
    }

    prefetch_adapters();
    StepPlan plan = scheduler.schedule();
    for (auto& [seq, error] : plan.failed) {
      if (seq->request.deadline) deadlines.erase({*seq->request.deadline, seq->request.id});
      send_final(*seq, FinishReason::kError, std::move(error));
    }
    for (std::unique_ptr<Sequence>& seq : plan.out_of_memory) {
      if (seq->request.deadline) deadlines.erase({*seq->request.deadline, seq->request.id});
      send_final(*seq, FinishReason::kLength);
    }
    if (!plan.empty()) run_step(plan);
    publish_stats();
    if (plan.empty() && !scheduler.idle()) {
      // Waiting work that cannot start yet (its adapter has no room): look again shortly.
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(1));
    }
  }

  // Stopping: everything still queued or running ends aborted, the not yet taken included.
  std::vector<uint64_t> ids = scheduler.live_ids();
  for (uint64_t id : ids) {
    if (auto seq = core.retire(id)) send_final(*seq, FinishReason::kAborted);
  }
  std::vector<Request> untaken;
  {
    std::lock_guard lock(mu_);
    untaken.swap(inbox_);
  }
  for (Request& r : untaken) {
    Sequence seq(std::move(r), nullptr);
    send_final(seq, FinishReason::kAborted);
  }
}

}  // namespace quilt::engine
