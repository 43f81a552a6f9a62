// CudaBackend::sample: every logit row sampled on the device (kernels/sampling); only the ids, and
// the log-probabilities when a row asks for them, are copied back.
#include <cstring>

#include "engine/backend/cuda/cuda_backend.h"
#include "kernels/sampling/sampling.h"

namespace quilt::engine::cuda {
namespace {

using kernels::sampling::kMaxTopLogprobs;

// `dev` holds at least `bytes` (grown without keeping its contents).
Status reserve(std::shared_ptr<DeviceMemory>& dev, size_t bytes, cudaStream_t stream) {
  if (dev != nullptr && dev->bytes() >= bytes) return Status::OK();
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream)));  // old one unread
  dev.reset();
  QUILT_ASSIGN_OR_RETURN(dev, DeviceMemory::create(std::max<size_t>(bytes, 256)));
  return Status::OK();
}

}  // namespace

Status CudaBackend::sample(const Tensor& logits, std::span<const SampleSpec> rows,
                           std::span<SampledToken> out) {
  const int64_t n = static_cast<int64_t>(rows.size());
  if (logits.dtype != DType::kF32 || !logits.contiguous() || logits.rows < n ||
      out.size() != rows.size() || logits.cols <= 0 || logits.cols > 0x3fffffff) {
    return Status::Internal("cuda backend: sample takes float32 logits, a row per spec");
  }
  if (n == 0) return Status::OK();
  const int32_t vocab = static_cast<int32_t>(logits.cols);
  const int32_t sort_len = kernels::sampling::sort_length(vocab);
  std::vector<kernels::sampling::SampleRow> specs(static_cast<size_t>(n));
  bool any_logprobs = false, any_sorted = false;
  for (int64_t r = 0; r < n; ++r) {
    const SampleSpec& s = rows[r];
    if (s.logprobs < 0 || s.logprobs > kMaxTopLogprobs) {
      return Status::Internal("cuda backend: sample logprobs out of range");
    }
    specs[r] = {s.temperature, s.top_p, s.top_k, s.logprobs, s.uniform};
    any_logprobs = any_logprobs || s.logprobs > 0;
    any_sorted = any_sorted || (s.temperature > 0.f && ((s.top_k > 0 && s.top_k < vocab) ||
                                                        s.top_p < 1.f));
  }
  // logit_bias and penalties ride in the same upload, after the rows, and are added to the
  // logits in place (the logits are this step's scratch) before the rows are sampled.
  std::vector<kernels::sampling::LogitAdjust> adjust;
  for (int64_t r = 0; r < n; ++r) {
    for (const auto& [id, delta] : rows[r].logit_adjust) {
      if (id < 0 || id >= vocab) return Status::Internal("cuda backend: logit_adjust id out of range");
      adjust.push_back({static_cast<int32_t>(r), id, delta});
    }
  }
  const size_t spec_bytes = specs.size() * sizeof(specs[0]);
  std::vector<std::byte> staged(spec_bytes + adjust.size() * sizeof(adjust[0]));
  std::memcpy(staged.data(), specs.data(), spec_bytes);
  if (!adjust.empty()) {
    std::memcpy(staged.data() + spec_bytes, adjust.data(), adjust.size() * sizeof(adjust[0]));
  }
  QUILT_RETURN_IF_ERROR(upload(staged.data(), staged.size(), sample_specs_));
  if (!adjust.empty()) {
    const auto* entries = reinterpret_cast<const kernels::sampling::LogitAdjust*>(
        static_cast<const std::byte*>(sample_specs_->data()) + spec_bytes);
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(kernels::sampling::adjust_logits_cuda(
        logits.as<float>(), logits.stride(), entries, static_cast<int32_t>(adjust.size()), stream())));
  }
  // Scratch sized for the rows that need it: keys only when some row sorts.
  QUILT_RETURN_IF_ERROR(
      reserve(sample_keys_, any_sorted ? n * sort_len * sizeof(uint64_t) : 8, stream()));
  QUILT_RETURN_IF_ERROR(reserve(sample_probs_, n * vocab * sizeof(float), stream()));
  // Out, packed: tokens [n], logprobs [n], top ids [n][20], top logprobs [n][20].
  const size_t out_words = static_cast<size_t>(n) * (2 + 2 * kMaxTopLogprobs);
  QUILT_RETURN_IF_ERROR(reserve(sample_out_, out_words * 4, stream()));
  int32_t* words = static_cast<int32_t*>(sample_out_->data());

  kernels::sampling::SampleParams p{};
  p.logits = logits.as<float>();
  p.rows = static_cast<const kernels::sampling::SampleRow*>(sample_specs_->data());
  p.keys = static_cast<uint64_t*>(sample_keys_->data());
  p.probs = static_cast<float*>(sample_probs_->data());
  p.tokens = words;
  p.logprobs = reinterpret_cast<float*>(words + n);
  p.top_ids = words + 2 * n;
  p.top_logprobs = reinterpret_cast<float*>(words + 2 * n + n * kMaxTopLogprobs);
  p.num_rows = static_cast<int32_t>(n);
  p.vocab = vocab;
  p.sort_len = sort_len;  // keys are touched only by rows that sort
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(kernels::sampling::sample_cuda(p, stream())));

  // Ids always; log-probabilities only when some row asked for them.
  const size_t back = any_logprobs ? out_words : static_cast<size_t>(n);
  std::vector<int32_t> host(back);
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(
      cudaMemcpyAsync(host.data(), words, back * 4, cudaMemcpyDeviceToHost, stream())));
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
  for (int64_t r = 0; r < n; ++r) {
    SampledToken& t = out[r];
    t = SampledToken{};
    t.token = host[r];
    if (rows[r].logprobs == 0) continue;
    std::memcpy(&t.logprob, &host[n + r], sizeof(float));
    const int32_t count = std::min(rows[r].logprobs, vocab);
    for (int32_t c = 0; c < count; ++c) {
      float lp;
      std::memcpy(&lp, &host[2 * n + n * kMaxTopLogprobs + r * kMaxTopLogprobs + c], sizeof(lp));
      t.top.emplace_back(host[2 * n + r * kMaxTopLogprobs + c], lp);
    }
  }
  return Status::OK();
}

}  // namespace quilt::engine::cuda
