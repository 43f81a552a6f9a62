// make_backend: picks the backend named by --device.
#include "engine/backend/backend.h"

#include <charconv>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/gemm.h"
#ifdef QUILT_CUDA_BACKEND
#include "engine/backend/cuda/cuda_backend.h"
#endif

namespace quilt::engine {

Result<WeightQuantization> parse_quantization(const std::string& name) {
  if (name == "none") return WeightQuantization::kNone;
  if (name == "int8") return WeightQuantization::kInt8;
  return Status::InvalidArgument("--quantize '" + name + "': expected none or int8");
}

Result<std::unique_ptr<Backend>> make_backend(const std::string& device, DType dtype,
                                              WeightQuantization quantization) {
  const bool int8 = quantization == WeightQuantization::kInt8;
  if (device == "cpu") {
    (void)cpu::gemm_isa();  // picks and checks the GEMM kernels now, and logs the choice
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(int8));
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    if (int8) {
      return Status::InvalidArgument("--quantize int8 runs on the cpu backend only (--device cpu)");
    }
    int ordinal = 0;
    if (device.size() > 5) {
      const char* first = device.data() + 5;
      const char* last = device.data() + device.size();
      const auto [end, ec] = std::from_chars(first, last, ordinal);
      if (ec != std::errc() || end != last || ordinal < 0) {
        return Status::InvalidArgument("device '" + device + "': expected cuda or cuda:N");
      }
    } else if (device.size() == 5) {
      return Status::InvalidArgument("device '" + device + "': expected cuda or cuda:N");
    }
#ifdef QUILT_CUDA_BACKEND
    QUILT_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaBackend> b,
                           cuda::CudaBackend::create(ordinal, dtype));
    return std::unique_ptr<Backend>(std::move(b));
#else
    (void)dtype;
    return Status::Unimplemented("device '" + device +
                                 "': this build has no CUDA backend (configure with nvcc present, "
                                 "QUILT_CUDA=ON, or QUILT_CUDA_SIM=ON); use --device cpu");
#endif
  }
  return Status::InvalidArgument("unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
}

Result<DType> parse_compute_dtype(const std::string& name) {
  if (name == "float16" || name == "fp16" || name == "half") return DType::kF16;
  if (name == "bfloat16" || name == "bf16") return DType::kBF16;
  return Status::InvalidArgument("dtype: unknown '" + name + "' (expected float16 or bfloat16)");
}

}  // namespace quilt::engine
