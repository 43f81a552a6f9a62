// libFuzzer: a safetensors image (an uploaded adapter_model.safetensors): header and data bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/weights/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using quilt::engine::TensorStore;
  auto store = TensorStore::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!store.ok()) return 0;
  // Every accepted tensor must lie inside the image: reading all of it is what ASan checks.
  for (const auto& [name, view] : (*store)->tensors()) {
    if (view.num_elements() > (1 << 20)) continue;
    (void)quilt::engine::to_float32(view);
  }
  return 0;
}
