// plan_memory on Llama-3-8B- and 70B-shaped configs, no weights loaded: the numbers a server of
// that shape would start with, and the start errors of configurations that cannot work.
#include "engine/memory/memory_plan.h"

#include <gtest/gtest.h>

namespace quilt::engine {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

ModelConfig llama3(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads) {
  ModelConfig c;
  c.vocab_size = 128256;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = 131072;
  return c;
}
ModelConfig llama3_8b() { return llama3(4096, 14336, 32, 32, 8); }
ModelConfig llama3_70b() { return llama3(8192, 28672, 80, 64, 8); }

MemoryRequest on_gpu(const ModelConfig& cfg, int64_t device_bytes) {
  MemoryRequest r;
  r.elem_bytes = 2;  // bf16
  r.unified = true;
  r.gpu_memory_fraction = 0.9;
  r.device_total_bytes = device_bytes;
  r.device_used_bytes = model_weight_bytes(cfg, 2);
  return r;
}

TEST(MemoryPlanTest, WeightEstimatesMatchTheModelsNames) {
  EXPECT_EQ(model_weight_bytes(llama3_8b(), 2), 16060522496);    // 8.03 B parameters
  EXPECT_EQ(model_weight_bytes(llama3_70b(), 2), 141107412992);  // 70.6 B parameters
}

TEST(MemoryPlanTest, AdapterBytesAreRankTimesEveryModulesDims) {
  // 8B: rank * (in + out of q,k,v,o,gate,up,down) = 64 * 81920 per layer, 32 layers, bf16.
  EXPECT_EQ(adapter_pool_bytes(llama3_8b(), 64, 16 * 1024, 2), 64 * 81920 * 32 * 2);
  EXPECT_EQ(adapter_pool_bytes(llama3_8b(), 64, 16 * 1024, 2), 320 * kMiB);
  // 70B: 64 * 161792 per layer, 80 layers.
  EXPECT_EQ(adapter_pool_bytes(llama3_70b(), 64, 16 * 1024, 2), 64 * 161792 * 80 * 2);
  // A page that does not divide a matrix rounds it up: rank 1 of 8B's k (1024 out) is one page.
  EXPECT_GT(adapter_pool_bytes(llama3_8b(), 1, 16 * 1024, 2), 81920 * 32 * 2);
}

TEST(MemoryPlanTest, Llama8BOnAn80GiBDeviceSharesOnePool) {
  const ModelConfig cfg = llama3_8b();
  Result<MemoryPlan> plan = plan_memory(cfg, on_gpu(cfg, 80 * kGiB));
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  // A page is the K (or V) of one 16-token block of one layer: 16 * 1024 (kv_dim) bf16 = 32 KiB;
  // an engine block (K and V in all 32 layers) is 64 of them.
  EXPECT_EQ(plan->page_elems, 16 * 1024);
  EXPECT_EQ(plan->pages_per_block, 64);
  EXPECT_EQ(plan->kv_token_bytes, 128 * 1024);
  EXPECT_EQ(plan->kv_block_bytes, 2 * kMiB);
  // 0.9 * 80 GiB less 16.06 GB of weights: 57.0 GiB, 29205 blocks, 467280 tokens.
  EXPECT_EQ(plan->num_blocks, 29205);
  EXPECT_EQ(plan->kv_tokens(), 467280);
  EXPECT_EQ(plan->pool_bytes, int64_t{29205} * 2 * kMiB);
  EXPECT_EQ(plan->max_lora_rank, kDefaultMaxLoraRank);
  EXPECT_EQ(plan->max_loras, kDefaultMaxLoras);
  EXPECT_EQ(plan->max_model_len, 131072);
  // A rank-128 all-module adapter: 640 MiB, 320 blocks of the pool.
  EXPECT_EQ(plan->max_rank_adapter_bytes, 640 * kMiB);
  // The whole 128K context of one sequence fits 3.5 times over, or ~90 rank-64 adapters.
  EXPECT_GT(plan->kv_tokens(), 3 * 131072);
  EXPECT_GT(plan->pool_bytes / adapter_pool_bytes(cfg, 64, plan->page_elems, 2), 90);
}

TEST(MemoryPlanTest, Llama70BNeedsMoreThanOneH100) {
  const ModelConfig cfg = llama3_70b();
  Result<MemoryPlan> plan = plan_memory(cfg, on_gpu(cfg, 80 * kGiB));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("--gpu-memory-fraction 0.9"), std::string::npos)
      << plan.status().message();
  EXPECT_NE(plan.status().message().find("does not even hold the model"), std::string::npos);
  // 141 GiB (an H200): 0.9 of it is still less than the weights.
  EXPECT_FALSE(plan_memory(cfg, on_gpu(cfg, 141 * kGiB)).ok());
}

TEST(MemoryPlanTest, Llama70BOnA192GiBDevice) {
  const ModelConfig cfg = llama3_70b();
  Result<MemoryPlan> plan = plan_memory(cfg, on_gpu(cfg, 192 * kGiB));
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->page_elems, 16 * 1024);  // kv_dim 1024 as for 8B: the same 32 KiB pages
  EXPECT_EQ(plan->pages_per_block, 160);
  EXPECT_EQ(plan->kv_block_bytes, 5 * kMiB);
  EXPECT_EQ(plan->num_blocks, 8475);
  EXPECT_EQ(plan->kv_tokens(), 135600);
  // Rank 128 on all modules of 70B: 3160 MiB, 632 blocks.
  EXPECT_EQ(plan->max_rank_adapter_bytes, 632 * 5 * kMiB);
}

TEST(MemoryPlanTest, CpuPoolsHoldAFewRank64AdaptersByDefault) {
  // Today's fixed 256 MiB (float32, hidden-size pages) held one rank-16 adapter of 8B and no
  // rank-32 one; the default now holds four rank-64 all-module adapters.
  const ModelConfig cfg = llama3_8b();
  MemoryRequest r;  // float32, separate pools, defaults
  Result<MemoryPlan> plan = plan_memory(cfg, r);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->page_elems, 4096);
  const int64_t rank64 = adapter_pool_bytes(cfg, 64, 4096, 4);
  EXPECT_EQ(rank64, 640 * kMiB);
  EXPECT_EQ(static_cast<int64_t>(plan->lora_pages) * 4096 * 4, 4 * rank64);
  EXPECT_EQ(plan->num_blocks, 256 * kMiB / (2 * 32 * 1024 * 4 * 16));  // --kv-cache-mb 256
  EXPECT_EQ(plan->pool_bytes, 256 * kMiB + 4 * rank64);
}

TEST(MemoryPlanTest, TinyModelsKeepTheOldFloor) {
  ModelConfig cfg = llama3(64, 128, 2, 4, 2);
  cfg.vocab_size = 256;
  Result<MemoryPlan> plan = plan_memory(cfg, MemoryRequest{});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(static_cast<int64_t>(plan->lora_pages) * 64 * 4, kMinDefaultLoraPoolBytes);
}

TEST(MemoryPlanTest, AnAdapterPoolBelowOneMaxRankAdapterIsAFlagError) {
  const ModelConfig cfg = llama3_8b();
  MemoryRequest r;
  r.lora_pool_bytes = 256 * kMiB;
  r.max_lora_rank = 32;
  Result<MemoryPlan> plan = plan_memory(cfg, r);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("--lora-pool-mib 256"), std::string::npos) << plan.status().message();
  EXPECT_NE(plan.status().message().find("rank 32 (--max-lora-rank)"), std::string::npos);
  r.max_lora_rank = 16;
  EXPECT_TRUE(plan_memory(cfg, r).ok());
}

TEST(MemoryPlanTest, UnifiedExplicitSizesMustHoldABlockAndAnAdapter) {
  const ModelConfig cfg = llama3_8b();
  MemoryRequest r;
  r.elem_bytes = 2;
  r.unified = true;
  r.kv_cache_bytes = 256 * kMiB;
  r.lora_pool_bytes = 256 * kMiB;
  Result<MemoryPlan> plan = plan_memory(cfg, r);
  ASSERT_FALSE(plan.ok());  // 512 MiB < one rank-128 adapter (640 MiB) and a block
  EXPECT_NE(plan.status().message().find("--kv-cache-mb 256"), std::string::npos) << plan.status().message();
  r.max_lora_rank = 64;
  plan = plan_memory(cfg, r);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->num_blocks, 256);  // 512 MiB of 2 MiB blocks, traded between KV and adapters
}

TEST(MemoryPlanTest, BadFlagValuesNameTheFlag) {
  const ModelConfig cfg = llama3_8b();
  MemoryRequest r = on_gpu(cfg, 80 * kGiB);
  r.gpu_memory_fraction = 1.5;
  Result<MemoryPlan> plan = plan_memory(cfg, r);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("--gpu-memory-fraction 1.5: must be in (0, 1]"), std::string::npos)
      << plan.status().message();
  r = on_gpu(cfg, 80 * kGiB);
  r.gpu_memory_fraction = 0.19;  // 15.2 GiB: the weights fit, a rank-128 adapter beside them not
  plan = plan_memory(cfg, r);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("--gpu-memory-fraction 0.19: "), std::string::npos);
  EXPECT_NE(plan.status().message().find("leaves too little"), std::string::npos) << plan.status().message();

  MemoryRequest m;
  m.max_model_len = 200000;
  plan = plan_memory(cfg, m);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("--max-model-len 200000"), std::string::npos);
  m.max_model_len = 8192;
  ASSERT_TRUE(plan_memory(cfg, m).ok());
  EXPECT_EQ(plan_memory(cfg, m)->max_model_len, 8192);

  MemoryRequest kv;
  kv.kv_cache_bytes = 1 << 20;  // 8B's float32 block is 4 MiB
  plan = plan_memory(cfg, kv);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("--kv-cache-mb 1: smaller than one KV block"), std::string::npos);
}

}  // namespace
}  // namespace quilt::engine
