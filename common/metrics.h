// A small metrics registry rendered in the Prometheus text format (counters, gauges, histograms).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace quilt {

using Labels = std::map<std::string, std::string>;

// Thread-safe throughout.
class Metrics {
 public:
  void describe(const std::string& name, const std::string& type, const std::string& help);
  void add(const std::string& name, const Labels& labels, double value = 1.0);  // counter
  void set(const std::string& name, const Labels& labels, double value);        // gauge
  // Histogram with the given bucket upper bounds (seconds, say); buckets fixed at first use.
  void observe(const std::string& name, const Labels& labels, double value,
               const std::vector<double>& bounds);
  // Gauges computed when scraped (engine state, for instance).
  void on_scrape(std::function<void(Metrics&)> collector);

  std::string render();

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bucket, not cumulative
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    std::string type = "untyped";
    std::string help;
    std::map<Labels, double> values;
    std::map<Labels, Histogram> histograms;
  };
  std::mutex mu_;
  std::map<std::string, Family> families_;                 // guarded by mu_
  std::vector<std::function<void(Metrics&)>> collectors_;  // guarded by mu_
};

// Buckets for latencies in seconds, 1 ms to 60 s.
const std::vector<double>& latency_buckets();

}  // namespace quilt
