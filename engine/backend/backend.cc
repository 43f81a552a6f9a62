// make_backend: picks the backend named by --device.
#include "engine/backend/backend.h"

#include "engine/backend/cpu/cpu_backend.h"

namespace quilt::engine {

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
  if (device == "cpu") return std::unique_ptr<Backend>(std::make_unique<CpuBackend>());
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    return Status::Unimplemented("device '" + device +
                                 "': the CUDA backend is not available in this build yet; use --device cpu");
  }
  return Status::InvalidArgument("unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
}

}  // namespace quilt::engine
