// Metrics on prometheus-cpp: families registered by name, series looked up by their labels.
#include "common/metrics.h"

#include <mutex>
#include <variant>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace quilt {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// One family and the series handed out so far (prometheus-cpp keeps them; we keep pointers to
// find them again and to remove them in clear()).
template <class T>
struct Series {
  prometheus::Family<T>* family = nullptr;
  std::map<Labels, T*> by_labels;
};

}  // namespace

struct Metrics::Impl {
  std::mutex mu;
  prometheus::Registry registry;  // thread-safe itself
  // Guarded by mu
  std::map<std::string, std::variant<Series<Counter>, Series<Gauge>, Series<Histogram>>> families;
  std::vector<std::function<void(Metrics&)>> collectors;

  // The family `name` of kind T, registered with `help` if new; null when `name` is another kind
  // or not a valid metric name. Caller holds mu.
  template <class T>
  Series<T>* family(const std::string& name, const std::string& help = "") {
    auto it = families.find(name);
    if (it != families.end()) return std::get_if<Series<T>>(&it->second);
    Series<T> s;
    try {
      if constexpr (std::is_same_v<T, Counter>) {
        s.family = &prometheus::BuildCounter().Name(name).Help(help).Register(registry);
      } else if constexpr (std::is_same_v<T, Gauge>) {
        s.family = &prometheus::BuildGauge().Name(name).Help(help).Register(registry);
      } else {
        s.family = &prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
      }
    } catch (const std::exception&) {
      return nullptr;
    }
    return std::get_if<Series<T>>(&families.emplace(name, std::move(s)).first->second);
  }

  template <class T, class... Args>
  T* series(Series<T>* s, const Labels& labels, Args&&... args) {
    if (!s) return nullptr;
    auto it = s->by_labels.find(labels);
    if (it != s->by_labels.end()) return it->second;
    try {
      T* t = &s->family->Add(labels, std::forward<Args>(args)...);
      s->by_labels.emplace(labels, t);
      return t;
    } catch (const std::exception&) {
      return nullptr;  // an invalid label name
    }
  }
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

const std::vector<double>& latency_buckets() {
  static const std::vector<double> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10,   30, 60};
  return kBuckets;
}

const std::vector<double>& token_buckets() {
  static const std::vector<double> kBuckets = {1,   2,   4,    8,    16,   32,   64,   128,
                                               256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  return kBuckets;
}

void Metrics::describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard lock(impl_->mu);
  if (type == "counter") {
    impl_->family<Counter>(name, help);
  } else if (type == "histogram") {
    impl_->family<Histogram>(name, help);
  } else {
    impl_->family<Gauge>(name, help);
  }
}

void Metrics::add(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(impl_->mu);
  if (Counter* c = impl_->series(impl_->family<Counter>(name), labels)) c->Increment(value);
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->families.find(name);
  if (it != impl_->families.end() && std::holds_alternative<Series<Counter>>(it->second)) {
    Counter* c = impl_->series(&std::get<Series<Counter>>(it->second), labels);
    if (c && value > c->Value()) c->Increment(value - c->Value());
    return;
  }
  if (Gauge* g = impl_->series(impl_->family<Gauge>(name), labels)) g->Set(value);
}

void Metrics::observe(const std::string& name, const Labels& labels, double value,
                      const std::vector<double>& bounds) {
  std::lock_guard lock(impl_->mu);
  Histogram* h = impl_->series(impl_->family<Histogram>(name), labels, Histogram::BucketBoundaries(bounds));
  if (h) h->Observe(value);
}

void Metrics::clear(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->families.find(name);
  if (it == impl_->families.end()) return;
  std::visit(
      [](auto& s) {
        for (auto& [labels, metric] : s.by_labels) s.family->Remove(metric);
        s.by_labels.clear();
      },
      it->second);
}

void Metrics::on_scrape(std::function<void(Metrics&)> collector) {
  std::lock_guard lock(impl_->mu);
  impl_->collectors.push_back(std::move(collector));
}

std::string Metrics::render() {
  std::vector<std::function<void(Metrics&)>> collectors;
  {
    std::lock_guard lock(impl_->mu);
    collectors = impl_->collectors;
  }
  for (auto& c : collectors) c(*this);  // outside the lock: collectors call set()
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace quilt
