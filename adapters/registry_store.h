// Private to the registry: how adapters lie in RocksDB, and turning uploads or stored bytes into
// validated LoraWeights. No locking here: every function is thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "adapters/registry.h"
#include "common/status.h"
#include "engine/model/lora_weights.h"
#include "engine/model/model_config.h"
#include "storage/database.h"

namespace quilt::adapters::registry_store {

// Weights are split so that no RocksDB value is GiB-sized (large values defeat the block cache
// and compaction, and RocksDB caps a value at 4 GiB).
inline constexpr int64_t kChunkBytes = int64_t{4} << 20;

// Family::kAdapters: "a:" + name → the metadata record (JSON).
inline constexpr std::string_view kMetaPrefix = "a:";
std::string meta_key(const std::string& name);
// Family::kAdapters: "h:" + name → the highest version number ever given to name (decimal). It
// outlives the name's removal, so that version numbers are never reused.
inline constexpr std::string_view kHighWaterPrefix = "h:";
std::string high_water_key(const std::string& name);
// The name of a high-water key and its number; Internal when the value is not a positive number.
Result<std::pair<std::string, int64_t>> decode_high_water(const std::string& key,
                                                          const std::string& value);
// Family::kAdapterBlobs: "b:" name \x1f version(10 digits) \x1f chunk(8 digits) → bytes, and
// "c:" name \x1f version(10 digits) → adapter_config.json. \x1f cannot occur in a valid name,
// so a name's prefix never matches a longer name's keys; zero padding keeps key order numeric.
std::string blob_key(const std::string& name, int64_t version, int64_t chunk);
std::string config_key(const std::string& name, int64_t version);
// [begin, end) covering every blob and config key of `name`, for WriteBatch::remove_range.
std::pair<std::string, std::string> blob_range(const std::string& name);
std::pair<std::string, std::string> config_range(const std::string& name);

// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// The metadata record: AdapterInfo less host_resident. Records written before sha256, uploader,
// metadata, staging and splits existed decode with those fields empty.
std::string encode_record(const AdapterInfo& info);
// Internal naming `key` when the record is not what encode_record writes.
Result<AdapterInfo> decode_record(const std::string& key, const std::string& value);

// A validated upload, ready to persist.
struct Upload {
  std::shared_ptr<const engine::LoraWeights> weights;
  AdapterVersion version;  // everything but the version number
  std::string blob;        // the safetensors file's bytes
};

// Reads `weights_file` once (what is validated is exactly what gets stored), parses the config
// and builds LoraWeights against `model`; the version carries both SHA-256s. Errors: parse_peft_config's and load_peft_adapter's
// as they are; a malformed safetensors file is Unprocessable (API.md: 422); an unreadable file
// IOError.
Result<Upload> prepare_upload(const engine::ModelConfig& model, const std::string& name,
                              const std::string& config_json,
                              const std::filesystem::path& weights_file);

// Puts the config and every chunk of `blob` as version `version` of `name`.
void put_version(storage::WriteBatch& batch, const std::string& name, int64_t version,
                 const std::string& config_json, const std::string& blob);

// Reads a stored version back (config + chunks) and builds its LoraWeights. Missing or
// short chunks are Internal: the metadata promised them.
Result<std::shared_ptr<const engine::LoraWeights>> load_version(const storage::Database& db,
                                                                const engine::ModelConfig& model,
                                                                const std::string& name,
                                                                const AdapterVersion& version);

}  // namespace quilt::adapters::registry_store
