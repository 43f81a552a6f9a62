// generate_command: flags → one engine Request → text on stdout as tokens arrive.
#include "app/generate_command.h"

#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "adapters/peft_adapter.h"
#include "app/demo_model.h"
#include "engine/engine.h"

namespace quilt::app {
namespace {

struct Flags {
  std::filesystem::path model = demo_model_dir();
  std::filesystem::path adapter;
  std::string device = "cpu";
  engine::DType dtype = engine::DType::kF16;  // cuda only
  int32_t threads = 0;                        // cpu compute threads; 0: every core
  engine::WeightQuantization quantization = engine::WeightQuantization::kNone;
  std::string prompt;
  bool chat = false;
  engine::SamplingParams sampling;
};

int fail(const Status& s) {
  std::fprintf(stderr, "quilt generate: %s\n", s.message().c_str());
  return 1;
}

int generate(const Flags& f) {
  engine::EngineOptions options;
  options.device = f.device;
  options.dtype = f.dtype;
  options.threads = f.threads;
  options.quantization = f.quantization;
  options.kv_cache_bytes = 64 << 20;
  // The adapter pool is sized from the model (room for a few rank-64 all-module adapters), so a
  // real model's adapter of any rank up to --max-lora-rank's default loads.
  options.lora_pool_bytes = 0;
  auto eng = engine::Engine::create(f.model, options);
  if (!eng.ok()) return fail(eng.status());
  engine::Engine& e = **eng;

  engine::Request req;
  req.id = 1;
  req.sampling = f.sampling;
  if (!f.adapter.empty()) {
    auto adapter = adapters::load_peft_adapter_dir(f.adapter, e.config());
    if (!adapter.ok()) return fail(adapter.status());
    req.adapter = *adapter;
  }
  std::string text = f.prompt;
  if (f.chat) {
    const engine::ChatTemplate* tmpl = e.tokenizer()->chat_template();
    if (!tmpl) return fail(Status::InvalidArgument("the model has no chat template"));
    nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", f.prompt}}});
    nlohmann::json ctx = {{"bos_token", e.tokenizer()->bos_token()}, {"eos_token", e.tokenizer()->eos_token()}};
    auto rendered = tmpl->render(messages, /*add_generation_prompt=*/true, ctx);
    if (!rendered.ok()) return fail(rendered.status());
    text = *rendered;
    req.prompt = e.tokenizer()->encode(text, /*add_special_tokens=*/false);
  } else {
    req.prompt = e.tokenizer()->encode(text, /*add_special_tokens=*/true);
  }

  std::promise<engine::TokenEvent> done;
  req.on_event = [&](const engine::TokenEvent& ev) {
    std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
    std::fflush(stdout);
    if (ev.finished) done.set_value(ev);
  };
  if (Status s = e.submit(std::move(req)); !s.ok()) return fail(s);
  engine::TokenEvent last = done.get_future().get();
  std::printf("\n");
  std::fprintf(stderr, "[%d prompt tokens, %d generated, finish: %s]\n", last.prompt_tokens,
               last.completion_tokens, engine::finish_reason_name(last.finish_reason));
  if (last.finish_reason == engine::FinishReason::kError) return fail(last.error);
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& root, Runner& chosen) {
  CLI::App* cmd = root.add_subcommand("generate", "one completion on the model, streamed to stdout (no server)");
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "the base model folder (default: the bundled demo model)")->type_name("DIR");
  cmd->add_option("--adapter", f->adapter, "a PEFT adapter folder to apply")->type_name("DIR");
  cmd->add_option("--max-tokens", f->sampling.max_tokens, "tokens to generate at most")->type_name("N");
  cmd->add_option("--temperature", f->sampling.temperature, "0 = greedy")->type_name("T");
  cmd->add_option("--top-p", f->sampling.top_p, "nucleus sampling")->type_name("P");
  cmd->add_option("--top-k", f->sampling.top_k, "sample from the K likeliest tokens")->type_name("K");
  cmd->add_option("--seed", f->sampling.seed, "sampling seed")->type_name("S");
  cmd->add_option("--stop", f->sampling.stop, "stop at this string (repeatable)")->type_name("STR");
  cmd->add_flag("--ignore-eos", f->sampling.ignore_eos, "keep generating past EOS");
  cmd->add_flag("--chat", f->chat, "render the prompt with the model's chat template");
  cmd->add_option("--device", f->device, "cpu, cuda or cuda:N (default cpu)")->type_name("DEVICE");
  cmd->add_option_function<std::string>(
         "--dtype",
         [f](const std::string& v) {
           auto d = engine::parse_compute_dtype(v);
           if (!d.ok()) throw CLI::ValidationError("--dtype", d.status().message());
           f->dtype = *d;
         },
         "compute dtype on cuda: float16 or bfloat16")
      ->type_name("DTYPE");
  cmd->add_option("--threads", f->threads, "cpu: compute threads (default: every core)")
      ->type_name("N")
      ->check(CLI::Range(1, 1024));
  cmd->add_option_function<std::string>(
         "--quantize",
         [f](const std::string& v) {
           auto q = engine::parse_quantization(v);
           if (!q.ok()) throw CLI::ValidationError("--quantize", q.status().message());
           f->quantization = *q;
         },
         "cpu: none (default) or int8 (the base model's matrices as int8, per-row scales)")
      ->type_name("none|int8");
  cmd->add_option("prompt", f->prompt, "the prompt (quote it)")->required();
  cmd->callback([f, &chosen] { chosen = [f] { return generate(*f); }; });
}

}  // namespace quilt::app
