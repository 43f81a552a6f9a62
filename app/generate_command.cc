// generate_command: flags → one engine Request → text on stdout as tokens arrive.
#include "app/generate_command.h"

#include <cstdio>
#include <cstdlib>
#include <future>
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
  std::string prompt;
  bool chat = false;
  engine::SamplingParams sampling;
};

bool parse_number(const char* text, double& out) {
  char* end = nullptr;
  out = std::strtod(text, &end);
  return end != text && *end == '\0';
}

// Returns an error message, or empty on success.
std::string parse_flags(int argc, char** argv, Flags& f) {
  bool have_prompt = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char*& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    const char* v = nullptr;
    double num = 0;
    if (a == "--chat") {
      f.chat = true;
    } else if (a == "--ignore-eos") {
      f.sampling.ignore_eos = true;
    } else if (a == "--model" || a == "--adapter" || a == "--device" || a == "--stop" ||
               a == "--dtype") {
      if (!value(v)) return a + " needs a value";
      if (a == "--dtype") {
        auto d = engine::parse_compute_dtype(v);
        if (!d.ok()) return d.status().message();
        f.dtype = *d;
      }
      if (a == "--model") f.model = v;
      if (a == "--adapter") f.adapter = v;
      if (a == "--device") f.device = v;
      if (a == "--stop") f.sampling.stop.push_back(v);
    } else if (a == "--max-tokens" || a == "--temperature" || a == "--top-p" || a == "--top-k" ||
               a == "--seed") {
      if (!value(v) || !parse_number(v, num)) return a + " needs a number";
      if (a == "--max-tokens") f.sampling.max_tokens = static_cast<int32_t>(num);
      if (a == "--temperature") f.sampling.temperature = static_cast<float>(num);
      if (a == "--top-p") f.sampling.top_p = static_cast<float>(num);
      if (a == "--top-k") f.sampling.top_k = static_cast<int32_t>(num);
      if (a == "--seed") f.sampling.seed = static_cast<uint64_t>(num);
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return "unknown flag " + a;
    } else if (!have_prompt) {
      f.prompt = a;
      have_prompt = true;
    } else {
      return "more than one prompt given (quote it)";
    }
  }
  if (!have_prompt) return "no prompt given";
  return {};
}

int fail(const Status& s) {
  std::fprintf(stderr, "quilt generate: %s\n", s.message().c_str());
  return 1;
}

}  // namespace

int generate_command(int argc, char** argv) {
  Flags f;
  if (std::string err = parse_flags(argc, argv, f); !err.empty()) {
    std::fprintf(stderr, "quilt generate: %s\n", err.c_str());
    return 2;
  }
  engine::EngineOptions options;
  options.device = f.device;
  options.dtype = f.dtype;
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

}  // namespace quilt::app
