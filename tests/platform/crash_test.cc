// kill -9 of a real `quilt serve` during uploads: after reopening, no partial adapter, and every
// acknowledged one is there with weights that load.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <random>
#include <thread>

#include "adapters/registry.h"
#include "engine/model/model_config.h"
#include "storage/database.h"
#include "tenants/tenant_store.h"
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

struct Child {
  pid_t pid = -1;
  uint16_t port = 0;
};

// Starts `quilt serve` and waits for the line that names its port.
Child spawn_server(const std::filesystem::path& data, const std::filesystem::path& key_file) {
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    const std::string d = data.string(), k = key_file.string();
    execl(QUILT_BINARY, QUILT_BINARY, "serve", "--data-dir", d.c_str(), "--port", "0", "--admin-key-file",
          k.c_str(), "--threads", "2", "--kv-cache-mb", "16", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[256];
  while (text.find("http://") == std::string::npos || text.find(" (device") == std::string::npos) {
    const ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  const size_t at = text.find("http://");
  if (at == std::string::npos) return c;
  const size_t colon = text.find(':', at + 7);
  c.port = static_cast<uint16_t>(std::stoi(text.substr(colon + 1)));
  return c;
}

TEST(CrashTest, KillNineDuringUploadsLosesNothingAcknowledgedAndLeavesNothingPartial) {
  std::random_device rd;
  const auto dir = std::filesystem::temp_directory_path() / ("quilt-crash-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  const auto key_file = dir / "admin.key";
  std::ofstream(key_file) << "crash-admin-key\n";
  const auto data = dir / "data";

  Child child = spawn_server(data, key_file);
  ASSERT_GT(child.port, 0) << "server did not start";
  auto call = [&](const std::string& method, const std::string& path, const std::string& body,
                  const std::string& type) {
    HttpConnection c(child.port);
    return c.request(method, path, body, {{"Authorization", "Bearer crash-admin-key"}, {"Content-Type", type}});
  };
  HttpResponse t = call("POST", "/admin/v1/tenants", R"({"name":"crash"})", "application/json");
  ASSERT_EQ(t.status, 201);
  const std::string tenant = json::parse(t.body)["id"];

  // Upload until the server dies; kill it at a random moment in the middle.
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rd() % 700));
    kill(child.pid, SIGKILL);
    killed = true;
  });
  std::vector<std::string> acknowledged;
  const char* fixtures[] = {"support-bot", "sql-writer", "legal-rs", "wide-64"};
  for (int i = 0; !killed && i < 10000; ++i) {
    const std::string fixture = fixtures[i % 4];
    auto [type, body] = multipart({{"tenant", tenant}, {"config", fixture_file(fixture, "adapter_config.json")}},
                                  {{"weights", fixture_file(fixture, "adapter_model.safetensors")}});
    try {
      HttpResponse r = call("PUT", "/admin/v1/adapters/a" + std::to_string(i % 7), body, type);
      if (r.status == 201) acknowledged.push_back("a" + std::to_string(i % 7) + "@" + std::to_string(json::parse(r.body)["version"].get<int>()));
    } catch (const std::exception&) {
      break;  // the server is gone
    }
  }
  killer.join();
  int status = 0;
  waitpid(child.pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_FALSE(acknowledged.empty()) << "no upload finished before the kill";

  auto db = storage::Database::open(data);
  ASSERT_TRUE(db.ok()) << db.status().to_string();
  auto model = engine::load_model_config(source_path("examples/models/tiny-llama"));
  auto registry = adapters::AdapterRegistry::open(**db, *model, 64 << 20);
  ASSERT_TRUE(registry.ok()) << registry.status().to_string();
  auto tenants = tenants::TenantStore::open(**db);
  ASSERT_TRUE(tenants.ok());
  EXPECT_TRUE((*tenants)->get(tenant).ok());
  for (const std::string& ref : acknowledged) {
    auto r = (*registry)->resolve(ref, tenant);
    EXPECT_TRUE(r.ok()) << ref << ": " << r.status().to_string();
  }
  // Everything listed, acknowledged or not, is whole: every version's weights load.
  for (const auto& a : (*registry)->list()) {
    for (const auto& v : a.versions) {
      auto r = (*registry)->resolve(a.name + "@" + std::to_string(v.version), tenant);
      EXPECT_TRUE(r.ok()) << a.name << "@" << v.version << ": " << r.status().to_string();
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace quilt::testing
