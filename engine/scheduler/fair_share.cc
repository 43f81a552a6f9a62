// FairShare: per-tenant queues and virtual token counters.
#include "engine/scheduler/fair_share.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace quilt::engine {
namespace {

// A weight that cannot divide service sensibly counts as the default, never as "free".
double effective_weight(double weight) {
  return std::isfinite(weight) && weight > 0 ? weight : 1.0;
}

}  // namespace

FairShare::Tenant& FairShare::tenant(const std::string& name) {
  auto [it, inserted] = index_.try_emplace(name, tenants_.size());
  if (inserted) tenants_.emplace_back().name = name;
  return tenants_[it->second];
}

const FairShare::Tenant* FairShare::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tenants_[it->second];
}

void FairShare::update_active(Tenant& t) {
  const bool active = !t.queue.empty() || t.running > 0;
  if (active == t.active) return;
  t.active = active;
  const size_t i = index_.at(t.name);
  if (active) {
    active_.push_back(i);
  } else {
    *std::find(active_.begin(), active_.end(), i) = active_.back();
    active_.pop_back();
  }
}

void FairShare::lift(Tenant& t) const {
  double waiting_min = std::numeric_limits<double>::infinity();
  double running_min = waiting_min;
  for (size_t i : active_) {
    const Tenant& other = tenants_[i];
    if (&other == &t) continue;
    if (!other.queue.empty()) waiting_min = std::min(waiting_min, other.counter);
    if (other.running > 0) running_min = std::min(running_min, other.counter);
  }
  // Waiting tenants are who the newcomer competes with for admission; with none, the running
  // ones still hold the service level it must not undercut.
  const double floor = std::isfinite(waiting_min) ? waiting_min : running_min;
  if (std::isfinite(floor)) t.counter = std::max(t.counter, floor);
}

void FairShare::enqueue(std::unique_ptr<Sequence> seq) {
  Tenant& t = tenant(seq->request.tenant);
  if (t.queue.empty()) lift(t);
  t.queue.push_back(std::move(seq));
  ++num_waiting_;
  update_active(t);
}

void FairShare::requeue_front(std::unique_ptr<Sequence> seq) {
  Tenant& t = tenant(seq->request.tenant);
  assert(t.running > 0);
  --t.running;
  t.queue.push_front(std::move(seq));
  ++num_waiting_;  // still active: it has a waiting sequence now
}

int32_t FairShare::next_tenant() const {
  int32_t best = -1;
  for (size_t i : active_) {
    const Tenant& t = tenants_[i];
    if (t.queue.empty()) continue;
    // On a tie the tenant seen first takes its turn: active_ is in no particular order.
    if (best < 0 || t.counter < tenants_[best].counter ||
        (t.counter == tenants_[best].counter && static_cast<int32_t>(i) < best)) {
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

Sequence* FairShare::peek_next() const {
  const int32_t i = next_tenant();
  return i < 0 ? nullptr : tenants_[i].queue.front().get();
}

std::unique_ptr<Sequence> FairShare::pop_next() {
  const int32_t i = next_tenant();
  if (i < 0) return nullptr;
  Tenant& t = tenants_[i];
  std::unique_ptr<Sequence> seq = std::move(t.queue.front());
  t.queue.pop_front();
  --num_waiting_;
  ++t.running;  // active either way
  return seq;
}

std::unique_ptr<Sequence> FairShare::erase(uint64_t request_id) {
  for (size_t i : active_) {
    Tenant& t = tenants_[i];
    auto it = std::find_if(t.queue.begin(), t.queue.end(),
                           [&](const auto& s) { return s->request.id == request_id; });
    if (it == t.queue.end()) continue;
    std::unique_ptr<Sequence> seq = std::move(*it);
    t.queue.erase(it);
    --num_waiting_;
    update_active(t);
    return seq;
  }
  return nullptr;
}

void FairShare::finished(const Sequence& seq) {
  Tenant& t = tenant(seq.request.tenant);
  assert(t.running > 0);
  --t.running;
  update_active(t);
}

void FairShare::charge_input(const std::string& tenant_name, int32_t tokens, double weight) {
  tenant(tenant_name).counter += kInputCost * tokens / effective_weight(weight);
}

void FairShare::charge_output(const std::string& tenant_name, int32_t tokens, double weight) {
  tenant(tenant_name).counter += kOutputCost * tokens / effective_weight(weight);
}

double FairShare::counter(const std::string& name) const {
  const Tenant* t = find(name);
  return t ? t->counter : 0.0;
}

size_t FairShare::choose_victim(std::span<const std::unique_ptr<Sequence>> running) const {
  assert(!running.empty());
  // Newest first, so the first sequence met of each tenant is its newest, and a strictly larger
  // counter is needed to displace it: ties go to the newest sequence, as before fair share.
  size_t best = running.size() - 1;
  double best_counter = counter(running[best]->request.tenant);
  for (size_t i = best; i-- > 0;) {
    const double c = counter(running[i]->request.tenant);
    if (c > best_counter) {
      best = i;
      best_counter = c;
    }
  }
  return best;
}

std::vector<uint64_t> FairShare::waiting_ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(num_waiting_);
  for (const Tenant& t : tenants_) {
    for (const auto& s : t.queue) ids.push_back(s->request.id);
  }
  return ids;
}

void FairShare::for_each_waiting(const std::function<void(Sequence&)>& f) const {
  for (const Tenant& t : tenants_) {
    for (const auto& s : t.queue) f(*s);
  }
}

}  // namespace quilt::engine
