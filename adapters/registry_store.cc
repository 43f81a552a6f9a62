// The registry's RocksDB layout (keys, metadata records, weight chunks) and upload validation.
#include "adapters/registry_store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "adapters/peft_adapter.h"
#include "adapters/peft_config.h"
#include "common/files.h"
#include "engine/weights/safetensors.h"

namespace quilt::adapters::registry_store {
namespace {

using json = nlohmann::json;

constexpr char kSep = '\x1f';

std::string padded(int64_t n, int width) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0*lld", width, static_cast<long long>(n));
  return buf;
}

// [prefix, prefix with its last byte incremented): every key that starts with `prefix`. The
// prefixes here end in \x1f, so the increment never overflows.
std::pair<std::string, std::string> prefix_range(std::string prefix) {
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  return {std::move(prefix), std::move(end)};
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Rank, target modules and size of a version, as the admin API reports them.
AdapterVersion describe(const engine::LoraWeights& w, int64_t bytes) {
  AdapterVersion v;
  v.rank = w.max_rank();
  std::set<std::string> modules;
  for (const auto& layer : w.layers) {
    for (int p = 0; p < engine::kNumProjections; ++p) {
      if (layer[p].rank > 0)
        modules.insert(engine::projection_name(static_cast<engine::Projection>(p)));
    }
  }
  v.target_modules.assign(modules.begin(), modules.end());
  v.bytes = bytes;
  v.created = unix_now();
  return v;
}

// Builds LoraWeights from a config and a safetensors image; `source` names the image.
Result<std::shared_ptr<const engine::LoraWeights>> build(const engine::ModelConfig& model,
                                                         const std::string& name,
                                                         const std::string& config_json,
                                                         std::string blob,
                                                         const std::string& source) {
  QUILT_ASSIGN_OR_RETURN(PeftConfig cfg, parse_peft_config(config_json, "adapter_config.json"));
  auto store = engine::TensorStore::from_bytes(std::move(blob), source);
  if (!store.ok()) {
    // A file that is not safetensors is an upload that does not fit: 422, like a wrong shape.
    const Status& s = store.status();
    if (s.IsInvalidArgument()) return Status::Unprocessable(s.message());
    return s;
  }
  return load_peft_adapter(cfg, **store, model, name);
}

}  // namespace

std::string meta_key(const std::string& name) { return std::string(kMetaPrefix) + name; }

std::string high_water_key(const std::string& name) {
  return std::string(kHighWaterPrefix) + name;
}

Result<std::pair<std::string, int64_t>> decode_high_water(const std::string& key,
                                                          const std::string& value) {
  int64_t n = 0;
  bool ok = !value.empty() && value.size() <= 18;
  for (char c : value) {
    if (c < '0' || c > '9') ok = false;
    n = n * 10 + (c - '0');
  }
  if (!ok || n <= 0 || key.size() <= kHighWaterPrefix.size()) {
    return Status::Internal("adapter high-water record '" + key + "' is corrupt");
  }
  return std::pair{key.substr(kHighWaterPrefix.size()), n};
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string blob_key(const std::string& name, int64_t version, int64_t chunk) {
  return "b:" + name + kSep + padded(version, 10) + kSep + padded(chunk, 8);
}

std::string config_key(const std::string& name, int64_t version) {
  return "c:" + name + kSep + padded(version, 10);
}

std::pair<std::string, std::string> blob_range(const std::string& name) {
  return prefix_range("b:" + name + kSep);
}

std::pair<std::string, std::string> config_range(const std::string& name) {
  return prefix_range("c:" + name + kSep);
}

std::string encode_record(const AdapterInfo& info) {
  json versions = json::array();
  for (const auto& v : info.versions) {
    json metadata = json::parse(v.metadata, nullptr, /*allow_exceptions=*/false);
    versions.push_back({{"version", v.version},
                        {"rank", v.rank},
                        {"target_modules", v.target_modules},
                        {"bytes", v.bytes},
                        {"created", v.created},
                        {"sha256", v.sha256},
                        {"config_sha256", v.config_sha256},
                        {"uploaded_by", v.uploaded_by},
                        {"metadata", metadata.is_object() ? metadata : json::object()}});
  }
  json record = {{"name", info.name},
                 {"owner", info.owner},
                 {"shared", info.shared},
                 {"live_version", info.live_version},
                 {"versions", std::move(versions)}};
  if (!info.split.empty()) {
    json split = json::object();
    for (const auto& [version, share] : info.split) split[std::to_string(version)] = share;
    record["split"] = std::move(split);
  }
  return record.dump();
}

Result<AdapterInfo> decode_record(const std::string& key, const std::string& value) {
  const auto corrupt = [&](const std::string& why) {
    return Status::Internal("adapter record '" + key + "' is corrupt: " + why);
  };
  json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  AdapterInfo info;
  try {
    info.name = j.at("name").get<std::string>();
    info.owner = j.at("owner").get<std::string>();
    info.shared = j.at("shared").get<bool>();
    info.live_version = j.at("live_version").get<int64_t>();
    for (const auto& v : j.at("versions")) {
      AdapterVersion av;
      av.version = v.at("version").get<int64_t>();
      av.rank = v.at("rank").get<int64_t>();
      av.target_modules = v.at("target_modules").get<std::vector<std::string>>();
      av.bytes = v.at("bytes").get<int64_t>();
      av.created = v.at("created").get<int64_t>();
      av.sha256 = v.value("sha256", "");
      av.config_sha256 = v.value("config_sha256", "");
      av.uploaded_by = v.value("uploaded_by", "");
      if (auto m = v.find("metadata"); m != v.end()) {
        if (!m->is_object()) return corrupt("metadata is not an object");
        av.metadata = m->dump();
      }
      info.versions.push_back(std::move(av));
    }
    if (auto split = j.find("split"); split != j.end()) {
      for (const auto& [version, share] : split->items()) {
        info.split[std::stoll(version)] = share.get<double>();
      }
    }
  } catch (const std::exception& e) {
    return corrupt(e.what());
  }
  if (meta_key(info.name) != key) return corrupt("its name is '" + info.name + "'");
  if (info.versions.empty()) return corrupt("no versions");
  for (size_t i = 0; i < info.versions.size(); ++i) {
    const AdapterVersion& v = info.versions[i];
    if (v.version <= 0 || (i > 0 && v.version <= info.versions[i - 1].version)) {
      return corrupt("versions are not positive and ascending");
    }
    if (v.bytes <= 0) return corrupt("version " + std::to_string(v.version) + " has no bytes");
  }
  const auto known = [&](int64_t version) {
    return std::any_of(info.versions.begin(), info.versions.end(),
                       [&](const AdapterVersion& v) { return v.version == version; });
  };
  // 0: every version is staged.
  if (info.live_version != 0 && !known(info.live_version)) {
    return corrupt("live version " + std::to_string(info.live_version) + " unknown");
  }
  if (!info.split.empty()) {
    if (Status st = validate_split(info.split, known); !st.ok()) return corrupt(st.message());
    if (primary_version(info.split) != info.live_version) return corrupt("split without its live version");
  }
  return info;
}

Result<Upload> prepare_upload(const engine::ModelConfig& model, const std::string& name,
                              const std::string& config_json,
                              const std::filesystem::path& weights_file) {
  auto blob = quilt::read_file(weights_file);
  if (!blob.ok()) {
    // The file is the server's own copy of the upload: not finding it is not the client's 404.
    return Status::IOError(blob.status().message());
  }
  Upload up;
  up.blob = std::move(*blob);
  // from_bytes keeps its own copy; `blob` stays for the chunks we persist.
  QUILT_ASSIGN_OR_RETURN(up.weights,
                         build(model, name, config_json, up.blob, "adapter_model.safetensors"));
  up.version = describe(*up.weights, static_cast<int64_t>(up.blob.size()));
  up.version.sha256 = sha256_hex(up.blob);
  up.version.config_sha256 = sha256_hex(config_json);
  return up;
}

void put_version(storage::WriteBatch& batch, const std::string& name, int64_t version,
                 const std::string& config_json, const std::string& blob) {
  batch.put(storage::Family::kAdapterBlobs, config_key(name, version), config_json);
  const std::string_view all(blob);
  for (int64_t i = 0; i * kChunkBytes < static_cast<int64_t>(blob.size()); ++i) {
    batch.put(storage::Family::kAdapterBlobs, blob_key(name, version, i),
              all.substr(static_cast<size_t>(i * kChunkBytes), static_cast<size_t>(kChunkBytes)));
  }
}

Result<std::shared_ptr<const engine::LoraWeights>> load_version(const storage::Database& db,
                                                                const engine::ModelConfig& model,
                                                                const std::string& name,
                                                                const AdapterVersion& version) {
  const std::string what = "adapter '" + name + "' version " + std::to_string(version.version);
  QUILT_ASSIGN_OR_RETURN(auto config,
                         db.get(storage::Family::kAdapterBlobs, config_key(name, version.version)));
  if (!config) return Status::Internal(what + ": stored config is missing");
  // Chunk by chunk with get() rather than one scan, so only the joined copy is ever whole.
  std::string blob;
  blob.reserve(static_cast<size_t>(version.bytes));
  const int64_t chunks = (version.bytes + kChunkBytes - 1) / kChunkBytes;
  for (int64_t i = 0; i < chunks; ++i) {
    QUILT_ASSIGN_OR_RETURN(
        auto chunk, db.get(storage::Family::kAdapterBlobs, blob_key(name, version.version, i)));
    const int64_t expected = std::min(kChunkBytes, version.bytes - i * kChunkBytes);
    if (!chunk || static_cast<int64_t>(chunk->size()) != expected) {
      return Status::Internal(what + ": stored weight chunk " + std::to_string(i) +
                              (chunk ? " has the wrong size" : " is missing"));
    }
    blob += *chunk;
  }
  return build(model, name, *config, std::move(blob), what + " (storage)");
}

}  // namespace quilt::adapters::registry_store
