// The engine end to end on a Llama-2-7B-shape model with random weights: decode tokens/s for four
// adapter workloads at several batch sizes, each next to its HBM roofline, and the time to load
// one adapter onto the device.
//
// usage: engine_bench [--batches 1,32,64] [--key-batch 32] [--prompt 128] [--new 64]
//                     [--adapters 2000] [--zipf 1.0] [--rank 16] [--repeat 2] [--layers 32]
//                     [--dtype bf16|fp16] [--graphs on|off] [--copy-mib 1024] [--out DIR] [--sim]
//   --sim: the shapes the CUDA simulator runs in seconds (2 layers, hidden 128, vocab 512,
//          prompt 16, 8 new tokens, batches 1,4,8 with 4 the key batch, 20 adapters, one
//          repeat, a 4 MiB copy); flags after it still override.
//
// The model (hidden 4096, intermediate 11008, 32 layers, 32 heads, vocab 32000) is written to a
// temporary directory that Engine::create loads like any other: config.json, the demo model's
// tokenizer (token ids past its vocabulary decode to nothing; every request ignores EOS) and one
// safetensors file whose tensors of equal size share their bytes (every layer's q, k, v and o one
// block; gate, up and down another; the embedding and lm_head a third), so the file is ~0.4 GB
// instead of 13 GB. The engine still loads each tensor into device memory of its own: the bytes a
// step reads are those of a 7B model.
//
// Workloads, each request prompt tokens then --new tokens (greedy, EOS ignored), all submitted at
// once:
//   base:      no adapter;
//   one:       every request on one rank-r adapter of q, k, v, o;
//   distinct:  every request on an adapter of its own (batch 32: the "32 adapters" point);
//   zipf:      --adapters adapters registered (built when first drawn), each request's drawn with
//              Zipf popularity P(k) ∝ 1/(k+1)^s, the S-LoRA workload.
// Decode tokens/s counts the tokens after each request's first, from the moment every request has
// its first token until all have finished (decode_bench's measure); best of --repeat.
//
// Roofline: the bytes a decode step must move at least (every weight read once, lm_head included;
// each sequence's K and V read once at the mean context prompt + new/2; each distinct adapter's
// pages read once) over the device-to-device copy bandwidth measured in this run (a cudaMemcpy of
// --copy-mib MiB, bytes read + written, as bandwidthTest counts). % of roofline is that floor over
// the measured step time.
//
// Adapter load: a rank-r adapter of all seven projections, (1) its bytes in the compute dtype
// copied host→device from pinned memory (events around one cudaMemcpyAsync; the issue's ≤ 3 ms
// target) and (2) the engine's whole path, AdapterSlots::acquire + ready until the device has the
// pages (host layout, conversion into the pinned ring, the copies); median of 5 adapters.
//
// Writes engine_bench.csv and engine_bench.md into --out (and the markdown to stdout); exits 1 if
// a request failed or a CUDA call did.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/lora/adapter_slots.h"
#include "engine/model/lora_weights.h"

using namespace quilt;
using engine::LoraWeights;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int64_t hidden = 4096, inter = 11008, layers = 32, heads = 32, kv_heads = 32, vocab = 32000;
  std::vector<int> batches = {1, 32, 64};
  int key_batch = 32;
  int prompt = 128;
  int new_tokens = 64;
  int adapters = 2000;
  double zipf = 1.0;
  int rank = 16;
  int repeat = 2;
  std::string dtype = "bf16";
  bool graphs = true;
  int64_t copy_mib = 1024;
  std::string out;
  bool sim = false;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "engine_bench: %s\n", what.c_str());
  std::exit(1);
}

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) die(std::string(what) + ": " + cudaGetErrorString(err));
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--sim") {
      o.sim = true;
      o.hidden = 128, o.inter = 256, o.layers = 2, o.heads = 4, o.kv_heads = 4, o.vocab = 512;
      o.batches = {1, 4, 8};
      o.key_batch = 4;
      o.prompt = 16;
      o.new_tokens = 8;
      o.adapters = 20;
      o.repeat = 1;
      o.copy_mib = 4;
      continue;
    }
    if (i + 1 >= argc) die("flag " + k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--batches")
      o.batches = parse_list(v);
    else if (k == "--key-batch")
      o.key_batch = std::stoi(v);
    else if (k == "--prompt")
      o.prompt = std::stoi(v);
    else if (k == "--new")
      o.new_tokens = std::stoi(v);
    else if (k == "--adapters")
      o.adapters = std::stoi(v);
    else if (k == "--zipf")
      o.zipf = std::stod(v);
    else if (k == "--rank")
      o.rank = std::stoi(v);
    else if (k == "--repeat")
      o.repeat = std::stoi(v);
    else if (k == "--layers")
      o.layers = std::stoi(v);
    else if (k == "--dtype")
      o.dtype = v;
    else if (k == "--graphs")
      o.graphs = v != "off";
    else if (k == "--copy-mib")
      o.copy_mib = std::stoll(v);
    else if (k == "--out")
      o.out = v;
    else
      die("unknown flag " + k);
  }
  if (o.new_tokens < 2 || o.prompt < 1 || o.repeat < 1 || o.rank < 1 || o.adapters < 1 ||
      o.batches.empty()) {
    die("--new must be at least 2; --prompt, --repeat, --rank, --adapters at least 1");
  }
  return o;
}

// ---- the model directory ------------------------------------------------------------------

// Random 16-bit values, uniform in ±scale: bf16 (the top half of a float) or fp16.
std::string random_halves(int64_t n, float scale, bool bf16, uint64_t seed) {
  std::string bytes(static_cast<size_t>(n) * 2, '\0');
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  auto* out = reinterpret_cast<uint16_t*>(bytes.data());
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;  // xorshift64
    const float u = static_cast<float>(s >> 40) * (1.0f / 16777216.0f) * 2.f - 1.f;
    const float v = u * scale;
    if (bf16) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      out[i] = static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    } else {
      const __half h = __float2half_rn(v);
      std::memcpy(&out[i], &h, 2);
    }
  }
  return bytes;
}

std::string constant_halves(int64_t n, float value, bool bf16) {
  uint16_t bits;
  if (bf16) {
    uint32_t f;
    std::memcpy(&f, &value, 4);
    bits = static_cast<uint16_t>(f >> 16);
  } else {
    const __half h = __float2half_rn(value);
    std::memcpy(&bits, &h, 2);
  }
  std::string bytes(static_cast<size_t>(n) * 2, '\0');
  auto* out = reinterpret_cast<uint16_t*>(bytes.data());
  std::fill(out, out + n, bits);
  return bytes;
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  if (!f) die("cannot write " + p.string());
}

// Writes config.json, the tokenizer and model.safetensors (tensors of one size share bytes).
void write_model(const Options& o, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const int64_t head_dim = o.hidden / o.heads, q_dim = o.hidden, kv_dim = o.kv_heads * head_dim;
  nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"hidden_size", o.hidden},
                        {"intermediate_size", o.inter},
                        {"num_hidden_layers", o.layers},
                        {"num_attention_heads", o.heads},
                        {"num_key_value_heads", o.kv_heads},
                        {"vocab_size", o.vocab},
                        {"max_position_embeddings", 4096},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", 10000.0},
                        {"tie_word_embeddings", false},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2},
                        {"hidden_act", "silu"},
                        {"torch_dtype", o.dtype == "bf16" ? "bfloat16" : "float16"}};
  write_file(dir / "config.json", cfg.dump(2));
  const std::filesystem::path demo = QUILT_DEMO_MODEL_DIR;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(demo / f, dir / f,
                               std::filesystem::copy_options::overwrite_existing);
  }

  // The data blocks, and the tensors that point into them.
  const bool bf16 = o.dtype == "bf16";
  const char* st_dtype = bf16 ? "BF16" : "F16";
  struct Block {
    std::string bytes;
    int64_t offset = 0;
  };
  std::vector<Block> blocks;
  auto add_block = [&](std::string bytes) {
    const int64_t offset =
        blocks.empty() ? 0
                       : blocks.back().offset + static_cast<int64_t>(blocks.back().bytes.size());
    blocks.push_back({std::move(bytes), offset});
    return blocks.size() - 1;
  };
  // Uniform ±a with std a/√3 ≈ 0.02, as Llama's initialisation; norms are ones.
  const float a = 0.035f;
  const size_t embed = add_block(random_halves(o.vocab * o.hidden, a, bf16, 1));
  const size_t norm = add_block(constant_halves(o.hidden, 1.f, bf16));
  const size_t attn_q = add_block(random_halves(q_dim * o.hidden, a, bf16, 2));
  const size_t attn_kv =
      kv_dim == q_dim ? attn_q : add_block(random_halves(kv_dim * o.hidden, a, bf16, 3));
  const size_t mlp = add_block(random_halves(o.inter * o.hidden, a, bf16, 4));
  nlohmann::json header = nlohmann::json::object();
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape, size_t block) {
    const Block& b = blocks[block];
    header[name] = {{"dtype", st_dtype},
                    {"shape", shape},
                    {"data_offsets", {b.offset, b.offset + static_cast<int64_t>(b.bytes.size())}}};
  };
  tensor("model.embed_tokens.weight", {o.vocab, o.hidden}, embed);
  tensor("lm_head.weight", {o.vocab, o.hidden}, embed);
  tensor("model.norm.weight", {o.hidden}, norm);
  for (int64_t l = 0; l < o.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    tensor(p + "input_layernorm.weight", {o.hidden}, norm);
    tensor(p + "post_attention_layernorm.weight", {o.hidden}, norm);
    tensor(p + "self_attn.q_proj.weight", {q_dim, o.hidden}, attn_q);
    tensor(p + "self_attn.k_proj.weight", {kv_dim, o.hidden}, attn_kv);
    tensor(p + "self_attn.v_proj.weight", {kv_dim, o.hidden}, attn_kv);
    tensor(p + "self_attn.o_proj.weight", {o.hidden, q_dim}, attn_q);
    tensor(p + "mlp.gate_proj.weight", {o.inter, o.hidden}, mlp);
    tensor(p + "mlp.up_proj.weight", {o.inter, o.hidden}, mlp);
    tensor(p + "mlp.down_proj.weight", {o.hidden, o.inter}, mlp);
  }
  std::string head = header.dump();
  head.append((8 - head.size() % 8) % 8, ' ');  // the data section 8-byte aligned
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  const uint64_t len = head.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f << head;
  for (const Block& b : blocks)
    f.write(b.bytes.data(), static_cast<std::streamsize>(b.bytes.size()));
  if (!f) die("cannot write " + (dir / "model.safetensors").string());
}

// ---- adapters -------------------------------------------------------------------------------

const std::vector<engine::Projection> kAttention = {engine::Projection::kQ, engine::Projection::kK,
                                                    engine::Projection::kV, engine::Projection::kO};
const std::vector<engine::Projection> kAllModules = {
    engine::Projection::kQ,   engine::Projection::kK,    engine::Projection::kV,
    engine::Projection::kO,   engine::Projection::kGate, engine::Projection::kUp,
    engine::Projection::kDown};

std::shared_ptr<const LoraWeights> make_adapter(const engine::ModelConfig& cfg, int rank,
                                                const std::vector<engine::Projection>& projs,
                                                const std::string& name, uint64_t seed) {
  auto w = std::make_shared<LoraWeights>();
  w->name = name;
  w->layers.resize(static_cast<size_t>(cfg.num_layers));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  auto u = [&s] {  // xorshift64, uniform in ±0.02: 7B adapters are 17M values each
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return (static_cast<float>(s >> 40) * (1.0f / 16777216.0f) * 2.f - 1.f) * 0.02f;
  };
  for (auto& layer : w->layers) {
    for (engine::Projection p : projs) {
      engine::LoraModule& m = layer[static_cast<int>(p)];
      m.rank = rank;
      m.scale = 2.f;  // alpha 2r
      m.a.resize(static_cast<size_t>(rank * engine::projection_in_dim(cfg, p)));
      m.bt.resize(static_cast<size_t>(rank * engine::projection_out_dim(cfg, p)));
      for (float& x : m.a) x = u();
      for (float& x : m.bt) x = u();
    }
  }
  return w;
}

// Bytes of an adapter's A and Bᵀ in the compute dtype.
int64_t adapter_bytes(const engine::ModelConfig& cfg, int rank,
                      const std::vector<engine::Projection>& projs, int64_t elem) {
  int64_t n = 0;
  for (engine::Projection p : projs) {
    n += rank * (engine::projection_in_dim(cfg, p) + engine::projection_out_dim(cfg, p));
  }
  return n * cfg.num_layers * elem;
}

// ---- one measured batch -------------------------------------------------------------------

// Seconds from the moment every request has its first token until every request finished.
double run_batch(engine::Engine& e, const Options& o,
                 const std::vector<std::shared_ptr<const LoraWeights>>& adapters,
                 uint64_t& next_id) {
  const int batch = static_cast<int>(adapters.size());
  std::mutex mu;
  std::condition_variable cv;
  int first_seen = 0, finished = 0;
  std::string error;
  Clock::time_point decode_start, end;
  for (int i = 0; i < batch; ++i) {
    engine::Request r;
    r.id = next_id++;
    for (int t = 0; t < o.prompt; ++t) r.prompt.push_back(5 + (t * 7 + i * 13) % 400);
    r.adapter = adapters[static_cast<size_t>(i)];
    r.sampling.max_tokens = o.new_tokens;
    r.sampling.ignore_eos = true;
    r.on_event = [&, seen = false](const engine::TokenEvent& ev) mutable {
      std::lock_guard lock(mu);
      if (!seen && ev.token) {
        seen = true;
        if (++first_seen == batch) decode_start = Clock::now();
      }
      if (ev.finished) {
        if (ev.finish_reason != engine::FinishReason::kLength && error.empty()) {
          error = std::string("request ended with '") +
                  engine::finish_reason_name(ev.finish_reason) + "': " + ev.error.to_string();
        }
        if (++finished == batch) {
          end = Clock::now();
          cv.notify_all();
        }
      }
    };
    if (Status s = e.submit(std::move(r)); !s.ok()) die("submit: " + s.to_string());
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished == batch; });
  if (!error.empty()) die(error);
  return std::chrono::duration<double>(end - decode_start).count();
}

// ---- device measurements ------------------------------------------------------------------

// Device-to-device copy bandwidth in GB/s (bytes read + written).
double copy_gbps(int64_t mib) {
  const size_t bytes = static_cast<size_t>(mib) << 20;
  void *src = nullptr, *dst = nullptr;
  check_cuda(cudaMalloc(&src, bytes), "cudaMalloc");
  check_cuda(cudaMalloc(&dst, bytes), "cudaMalloc");
  check_cuda(cudaMemset(src, 1, bytes), "cudaMemset");
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "warm-up copy");
  std::vector<float> times;
  for (int r = 0; r < 5; ++r) {
    check_cuda(cudaEventRecord(start, nullptr), "cudaEventRecord");
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nullptr), "copy");
    check_cuda(cudaEventRecord(stop, nullptr), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * static_cast<double>(bytes) / (std::max(times[times.size() / 2], 1e-6f) * 1e-3) / 1e9;
}

struct LoadTimes {
  double h2d_ms = 0;     // the adapter's bytes, pinned → device
  double engine_ms = 0;  // AdapterSlots::acquire + ready, until the device has the pages
  int64_t bytes = 0;
};

LoadTimes adapter_load(const Options& o, const engine::ModelConfig& cfg, engine::DType dtype) {
  LoadTimes t;
  const int64_t elem = engine::dtype_size(dtype);
  t.bytes = adapter_bytes(cfg, o.rank, kAllModules, elem);

  // (1) the raw copy.
  void *host = nullptr, *dev = nullptr;
  check_cuda(cudaMallocHost(&host, static_cast<size_t>(t.bytes)), "cudaMallocHost");
  check_cuda(cudaMalloc(&dev, static_cast<size_t>(t.bytes)), "cudaMalloc");
  std::memset(host, 0x3c, static_cast<size_t>(t.bytes));
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> times;
  for (int r = 0; r < 6; ++r) {
    check_cuda(cudaEventRecord(start, stream), "cudaEventRecord");
    check_cuda(
        cudaMemcpyAsync(dev, host, static_cast<size_t>(t.bytes), cudaMemcpyHostToDevice, stream),
        "adapter copy");
    check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    if (r > 0) times.push_back(ms);  // the first is a warm-up
  }
  std::sort(times.begin(), times.end());
  t.h2d_ms = times[times.size() / 2];
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  cudaFreeHost(host);
  cudaFree(dev);

  // (2) the engine's path, on a backend of its own.
  auto backend = engine::make_backend("cuda", dtype);
  if (!backend.ok()) die(backend.status().to_string());
  engine::LoraPoolShape pool;
  pool.page_elems = cfg.hidden_size;
  pool.max_slots = 8;
  pool.num_layers = static_cast<int32_t>(cfg.num_layers);
  std::vector<std::shared_ptr<const LoraWeights>> adapters;
  for (int i = 0; i < 6; ++i) {
    adapters.push_back(
        make_adapter(cfg, o.rank, kAllModules, "load-" + std::to_string(i), 9000 + i));
  }
  // Pages for two adapters (each matrix starts on a page of its own): every load below takes
  // free room, nothing is evicted on its path.
  int64_t pages = 0;
  for (engine::Projection p : kAllModules) {
    for (int64_t dim : {engine::projection_in_dim(cfg, p), engine::projection_out_dim(cfg, p)}) {
      pages += (o.rank * dim + pool.page_elems - 1) / pool.page_elems;
    }
  }
  pool.num_pages = static_cast<int32_t>(2 * pages * cfg.num_layers);
  auto slots = engine::AdapterSlots::create(**backend, cfg, pool, /*async_loads=*/true);
  if (!slots.ok()) die(slots.status().to_string());
  times.clear();
  for (size_t i = 0; i < adapters.size(); ++i) {
    check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    const auto t0 = Clock::now();
    auto slot = (*slots)->acquire(adapters[i]);
    if (!slot.ok()) die(slot.status().to_string());
    if (Status s = (*slots)->ready(*slot); !s.ok()) die(s.to_string());
    check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    (*slots)->release(*slot);
    (*slots)->evict_idle([](const LoraWeights&) { return true; });
    if (i > 0) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  t.engine_ms = times[times.size() / 2];
  return t;
}

// ---- the table ----------------------------------------------------------------------------

struct Row {
  std::string workload;
  int batch = 0;
  int distinct = 0;  // adapters in the batch
  double tok_s = 0, ms_step = 0, bytes_step = 0, roof_ms = 0, pct_roof = 0, pct_base = 0;
};

// Zipf draws over n adapters, from a fixed seed per batch size.
std::vector<int> zipf_draws(int n, double s, int count, uint64_t seed) {
  std::vector<double> weights(static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) weights[static_cast<size_t>(k)] = 1.0 / std::pow(k + 1.0, s);
  std::discrete_distribution<int> d(weights.begin(), weights.end());
  std::mt19937_64 rng(seed);
  std::vector<int> out;
  for (int i = 0; i < count; ++i) out.push_back(d(rng));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto t_start = Clock::now();
  const engine::DType dtype = o.dtype == "bf16" ? engine::DType::kBF16 : engine::DType::kF16;
  const int64_t elem = 2;
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());

  // 1. The copy bandwidth, before the engine takes its memory.
  const double gbps = copy_gbps(o.copy_mib);

  // 2. The model, the engine.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("quilt-engine-bench-" + std::to_string(::getpid()));
  write_model(o, dir);
  engine::EngineOptions eo;
  eo.device = "cuda";
  eo.dtype = dtype;
  eo.max_running = std::max(max_batch, 1);
  eo.max_step_tokens = std::max(2048, o.prompt + max_batch);
  if (o.sim) eo.max_step_tokens = std::max(128, o.prompt + max_batch);
  eo.decode_graphs = o.graphs;
  eo.max_lora_rank = o.rank;
  const int64_t kv_dim = o.kv_heads * (o.hidden / o.heads);
  const int64_t kv_token_bytes = 2 * o.layers * kv_dim * elem;
  const int64_t blocks_per_seq = (o.prompt + o.new_tokens + eo.block_size - 1) / eo.block_size + 1;
  eo.kv_cache_bytes = (max_batch + 2) * blocks_per_seq * eo.block_size * kv_token_bytes;
  // Room for max_batch + 8 rank-r q/k/v/o adapters at once (pages of hidden values, as the
  // engine lays them out), so that a batch never waits for an eviction.
  const int64_t qkvo_elems = 2 * o.rank * (o.hidden + o.hidden) + 2 * o.rank * (o.hidden + kv_dim);
  eo.max_adapter_slots = std::max(eo.max_adapter_slots, max_batch + 8);
  eo.lora_pool_bytes = std::max<int64_t>(
      eo.lora_pool_bytes, (max_batch + 8) * (qkvo_elems * o.layers * elem + 64 * o.hidden * elem));
  auto loaded = engine::Engine::create(dir, eo);
  std::filesystem::remove_all(dir);  // loaded into device memory: the file is no longer needed
  if (!loaded.ok()) die(loaded.status().to_string());
  std::unique_ptr<engine::Engine> eng = std::move(*loaded);
  const engine::ModelConfig cfg = eng->config();  // a copy: the engine goes before the load test
  const int64_t qkvo_bytes = adapter_bytes(cfg, o.rank, kAttention, elem);
  std::fprintf(stderr, "engine_bench: model written and loaded in %.1f s\n",
               std::chrono::duration<double>(Clock::now() - t_start).count());

  // 3. The workloads.
  std::map<int, std::shared_ptr<const LoraWeights>> registry;  // zipf adapters, built when drawn
  auto registered = [&](int k) {
    auto& w = registry[k];
    if (!w) w = make_adapter(cfg, o.rank, kAttention, "zipf-" + std::to_string(k), 100000 + k);
    return w;
  };
  std::vector<std::shared_ptr<const LoraWeights>> distinct_pool;
  const auto one = make_adapter(cfg, o.rank, kAttention, "one", 7);
  uint64_t next_id = 1;
  run_batch(*eng, o, {nullptr}, next_id);  // warm-up: plans, first-use uploads

  const int64_t weight_bytes =
      elem * (cfg.num_layers * (cfg.hidden_size * (cfg.q_dim() + 2 * cfg.kv_dim()) +
                                cfg.q_dim() * cfg.hidden_size +
                                3 * cfg.intermediate_size * cfg.hidden_size + 2 * cfg.hidden_size) +
              cfg.vocab_size * cfg.hidden_size + cfg.hidden_size);
  const double mean_ctx = o.prompt + o.new_tokens / 2.0;
  std::vector<Row> rows;
  std::map<int, double> base_tok_s;
  for (const char* workload : {"base", "one", "distinct", "zipf"}) {
    for (int batch : o.batches) {
      std::vector<std::shared_ptr<const LoraWeights>> adapters(static_cast<size_t>(batch));
      const std::string w = workload;
      if (w == "one") {
        std::fill(adapters.begin(), adapters.end(), one);
      } else if (w == "distinct") {
        while (static_cast<int>(distinct_pool.size()) < batch) {
          const int i = static_cast<int>(distinct_pool.size());
          distinct_pool.push_back(
              make_adapter(cfg, o.rank, kAttention, "distinct-" + std::to_string(i), 5000 + i));
        }
        std::copy_n(distinct_pool.begin(), batch, adapters.begin());
      } else if (w == "zipf") {
        const std::vector<int> draws = zipf_draws(o.adapters, o.zipf, batch, 42 + batch);
        for (int i = 0; i < batch; ++i) adapters[static_cast<size_t>(i)] = registered(draws[i]);
      }
      std::set<const LoraWeights*> uniq;
      for (const auto& a : adapters) {
        if (a) uniq.insert(a.get());
      }
      double best = 1e30;
      for (int r = 0; r < o.repeat; ++r)
        best = std::min(best, run_batch(*eng, o, adapters, next_id));
      Row row;
      row.workload = w;
      row.batch = batch;
      row.distinct = static_cast<int>(uniq.size());
      const int steps = o.new_tokens - 1;
      row.tok_s = static_cast<double>(batch) * steps / best;
      row.ms_step = best * 1e3 / steps;
      row.bytes_step = static_cast<double>(weight_bytes) + batch * mean_ctx * kv_token_bytes +
                       static_cast<double>(row.distinct) * qkvo_bytes;
      row.roof_ms = row.bytes_step / (gbps * 1e9) * 1e3;
      row.pct_roof = 100.0 * row.roof_ms / row.ms_step;
      if (w == "base") base_tok_s[batch] = row.tok_s;
      row.pct_base = 100.0 * row.tok_s / base_tok_s[batch];
      rows.push_back(row);
      std::fprintf(stderr, "engine_bench: %s batch %d: %.1f tokens/s\n", w.c_str(), batch,
                   row.tok_s);
    }
  }
  const engine::EngineStats stats = eng->stats();
  eng.reset();

  // 4. Adapter load time.
  const LoadTimes load = adapter_load(o, cfg, dtype);
  const double total_s = std::chrono::duration<double>(Clock::now() - t_start).count();

  // 5. Output.
  auto find = [&](const std::string& w, int batch) -> const Row* {
    for (const Row& r : rows) {
      if (r.workload == w && r.batch == batch) return &r;
    }
    return nullptr;
  };
  std::ostringstream csv, md;
  // Adapter loads are rows too: ms_per_step holds the load's time, bytes_per_step its bytes.
  csv << "workload,batch,key_batch,adapters_in_batch,adapters_registered,decode_tok_s,ms_per_step,"
         "bytes_per_step,roofline_ms,roofline_tok_s,pct_roofline,pct_of_base,copy_gbps,graphs,"
         "graph_replays\n";
  char line[512];
  const char* graphs = o.graphs ? "on" : "off";
  const unsigned long long replays = stats.graph_replays;
  for (const Row& r : rows) {
    std::snprintf(line, sizeof(line),
                  "%s,%d,%d,%d,%d,%.2f,%.4f,%.0f,%.4f,%.2f,%.1f,%.1f,%.1f,%s,%llu\n",
                  r.workload.c_str(), r.batch, o.key_batch, r.distinct, o.adapters, r.tok_s,
                  r.ms_step, r.bytes_step, r.roof_ms, r.batch / (r.roof_ms * 1e-3), r.pct_roof,
                  r.pct_base, gbps, graphs, replays);
    csv << line;
  }
  for (const auto& [name, ms] : {std::pair{"adapter_load_h2d", load.h2d_ms},
                                 std::pair{"adapter_load_engine", load.engine_ms}}) {
    std::snprintf(line, sizeof(line), "%s,1,%d,1,%d,,%.4f,%lld,,,,,%.1f,%s,%llu\n", name,
                  o.key_batch, o.adapters, ms, static_cast<long long>(load.bytes), gbps, graphs,
                  replays);
    csv << line;
  }

  md << "# engine_bench" << (o.sim ? " (simulator: CPU times, not GPU speed)" : "") << "\n\n";
  md << "Model: hidden " << cfg.hidden_size << ", intermediate " << cfg.intermediate_size << ", "
     << cfg.num_layers << " layers, " << cfg.num_heads << " heads, vocab " << cfg.vocab_size << ", "
     << o.dtype << " random weights. Prompt " << o.prompt << ", " << o.new_tokens
     << " new tokens, greedy. Adapters rank " << o.rank << " on q, k, v, o; zipf: " << o.adapters
     << " registered, s = " << o.zipf << ". Decode graphs " << (o.graphs ? "on" : "off")
     << ". Copy bandwidth " << std::fixed;
  md.precision(1);
  md << gbps << " GB/s (device to device, read + write). Engine steps " << stats.steps
     << " (decode graphs: " << stats.graph_captures << " captured, " << stats.graph_replays
     << " replays, " << stats.graph_fallbacks << " op by op), adapter loads " << stats.adapter_loads
     << ". Total " << total_s << " s.\n\n";
  md << "| workload | batch | adapters in batch | decode tokens/s | ms/step | MB/step | roofline "
        "ms "
        "| % of roofline | % of base |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    std::snprintf(line, sizeof(line),
                  "| %s | %d | %d | %.1f | %.3f | %.1f | %.3f | %.1f | %.1f |\n",
                  r.workload.c_str(), r.batch, r.distinct, r.tok_s, r.ms_step, r.bytes_step / 1e6,
                  r.roof_ms, r.pct_roof, r.pct_base);
    md << line;
  }
  std::snprintf(line, sizeof(line),
                "\nAdapter load (rank %d, all seven projections, %.1f MB): host→device %.3f ms "
                "(pinned, one copy); the engine's path (AdapterSlots acquire + ready, host layout "
                "and conversion included) %.3f ms.\n",
                o.rank, load.bytes / 1e6, load.h2d_ms, load.engine_ms);
  md << line;
  // The targets, on the key batch.
  const Row* base_k = find("base", o.key_batch);
  const Row* dist_k = find("distinct", o.key_batch);
  const Row* zipf_k = find("zipf", o.key_batch);
  const Row* base_1 = find("base", 1);
  md << "\nKey numbers: ";
  if (dist_k && base_k) {
    std::snprintf(line, sizeof(line), "distinct/base at batch %d %.1f%% (target >= 90); ",
                  o.key_batch, dist_k->pct_base);
    md << line;
  }
  if (base_1) {
    std::snprintf(line, sizeof(line), "base batch 1 %.1f%% of roofline (target >= 75); ",
                  base_1->pct_roof);
    md << line;
  }
  if (zipf_k && dist_k) {
    std::snprintf(line, sizeof(line), "zipf %d / %d adapters at batch %d %.1f%% (target >= 95); ",
                  o.adapters, dist_k->distinct, o.key_batch, 100.0 * zipf_k->tok_s / dist_k->tok_s);
    md << line;
  }
  std::snprintf(line, sizeof(line),
                "adapter load %.3f ms host→device (target <= 3), %.3f ms engine path.\n",
                load.h2d_ms, load.engine_ms);
  md << line;

  std::fputs(md.str().c_str(), stdout);
  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    std::ofstream(std::filesystem::path(o.out) / "engine_bench.csv") << csv.str();
    std::ofstream(std::filesystem::path(o.out) / "engine_bench.md") << md.str();
  }
  return 0;
}
