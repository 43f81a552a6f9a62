// The process's metrics: a thin, name-keyed wrapper over a prometheus-cpp registry (counters,
// gauges, histograms), rendered by prometheus-cpp's TextSerializer.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace quilt {

using Labels = std::map<std::string, std::string>;

// Thread-safe throughout. A family's type is fixed by describe() or, without it, by its first use
// (add: counter, set: gauge, observe: histogram); a use of the other kind is ignored, as are
// names and labels that Prometheus does not allow (metrics never fail a request).
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // `type`: "counter", "gauge" or "histogram".
  void describe(const std::string& name, const std::string& type, const std::string& help);
  void add(const std::string& name, const Labels& labels, double value = 1.0);  // counter
  // Gauge; on a counter, a total sampled elsewhere (an engine counter): the counter moves up to
  // `value` and never down.
  void set(const std::string& name, const Labels& labels, double value);
  // Histogram with the given bucket upper bounds (seconds, say); buckets fixed at first use.
  void observe(const std::string& name, const Labels& labels, double value,
               const std::vector<double>& bounds);
  // Drops every series of a family: for gauges whose label values come and go (the adapters
  // of vllm:lora_requests_info).
  void clear(const std::string& name);
  // Runs at every render(), before the samples are read (engine state, for instance).
  void on_scrape(std::function<void(Metrics&)> collector);

  // The Prometheus text exposition format (version 0.0.4).
  std::string render();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Buckets for latencies in seconds, 1 ms to 60 s.
const std::vector<double>& latency_buckets();
// Buckets for request lengths in tokens, 1 to 32 K (powers of two).
const std::vector<double>& token_buckets();

}  // namespace quilt
