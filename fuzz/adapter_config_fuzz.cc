// libFuzzer: adapter_config.json (an upload's config part): parsing, target resolution against
// the demo model, and loading a fixture adapter's weights under that config.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "adapters/peft_adapter.h"
#include "adapters/peft_config.h"
#include "engine/model/model_config.h"
#include "engine/weights/safetensors.h"

namespace {

struct Fixture {
  quilt::engine::ModelConfig model;
  std::unique_ptr<quilt::engine::TensorStore> weights;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    x.model = quilt::engine::load_model_config(QUILT_SOURCE_DIR "/examples/models/tiny-llama").value();
    x.weights = quilt::engine::TensorStore::open_file(
                    QUILT_SOURCE_DIR "/examples/adapters/sql-writer/adapter_model.safetensors")
                    .value();
    return x;
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& f = fixture();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = quilt::adapters::parse_peft_config(text, "fuzz");
  if (!cfg.ok()) return 0;
  auto plan = quilt::adapters::resolve_targets(*cfg, f.model);
  if (!plan.ok()) return 0;
  (void)quilt::adapters::load_peft_adapter(*cfg, *f.weights, f.model, "fuzz");
  return 0;
}
