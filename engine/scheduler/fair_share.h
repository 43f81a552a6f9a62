// Fair share across tenants by Virtual Token Counters (VTC, Sheng et al., OSDI'24).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/scheduler/sequence.h"

namespace quilt::engine {

// Owns the waiting sequences, one FIFO queue per tenant, and each tenant's virtual counter: the
// service it has received, in weighted tokens. The scheduler asks it who is admitted next (the
// head of the tenant with the smallest counter) and whom to preempt (the newest running sequence
// of the tenant with the largest counter); the scheduler reports what it charged and when a
// running sequence leaves. It never looks at KV blocks, adapters or budgets: the scheduler decides
// what fits, this decides the order.
//
// Service: each prompt token costs kInputCost and each sampled token kOutputCost, divided by the
// request's tenant_weight (<= 0 or not finite counts as 1). A tenant's counter only grows.
//
// Not thread-safe: the engine thread owns it (through the Scheduler).
class FairShare {
 public:
  static constexpr double kInputCost = 1.0;
  static constexpr double kOutputCost = 2.0;

  // A new arrival joins the back of its tenant's queue. When that queue was empty, the tenant's
  // counter is lifted to the smallest counter of the other tenants with waiting sequences, or,
  // when none wait, of the other tenants with running sequences; with no other tenant active it
  // stays. The lift is what keeps an idle tenant from banking credit it could later spend to
  // starve everyone else.
  void enqueue(std::unique_ptr<Sequence> seq);
  // A preempted sequence goes back to the head of its tenant's queue: no lift (its tenant was
  // active), no refund of what it was charged. It no longer counts as running.
  void requeue_front(std::unique_ptr<Sequence> seq);

  // The head of the waiting tenant with the smallest counter (ties: the tenant seen first), or
  // null when nothing waits. Stays queued until pop_next().
  Sequence* peek_next() const;
  // Takes the sequence peek_next() returned; it counts as running from now on. Ownership passes
  // to the caller.
  std::unique_ptr<Sequence> pop_next();
  // Removes a waiting sequence (a cancel); null when it is not waiting here.
  std::unique_ptr<Sequence> erase(uint64_t request_id);
  // A running sequence left for good (finished, aborted or failed).
  void finished(const Sequence& seq);

  void charge_input(const std::string& tenant, int32_t tokens, double weight);
  void charge_output(const std::string& tenant, int32_t tokens, double weight);
  // A tenant never seen has counter 0.
  double counter(const std::string& tenant) const;

  // Index in `running` of the sequence to preempt: among the tenants with running sequences, the
  // one with the largest counter (ties: the one whose running sequence is newest), and its newest
  // sequence (`running` is in admission order). `running` must not be empty.
  size_t choose_victim(std::span<const std::unique_ptr<Sequence>> running) const;

  int32_t num_waiting() const { return num_waiting_; }
  bool has_waiting() const { return num_waiting_ > 0; }
  std::vector<uint64_t> waiting_ids() const;
  // Every waiting sequence, in waiting_ids() order.
  void for_each_waiting(const std::function<void(Sequence&)>& f) const;  // per tenant in first-seen order, FIFO within

 private:
  struct Tenant {
    std::string name;
    double counter = 0;
    std::deque<std::unique_ptr<Sequence>> queue;
    int32_t running = 0;
    bool active = false;  // listed in active_
  };

  Tenant& tenant(const std::string& name);
  const Tenant* find(const std::string& name) const;
  // Index of the waiting tenant with the smallest counter, or -1.
  int32_t next_tenant() const;
  void lift(Tenant& t) const;
  void update_active(Tenant& t);

  // In first-seen order, which makes ties deterministic. Tenants are kept once seen: a counter
  // above the others' must survive the tenant's idle periods, or idling would wipe its debt.
  // A deque: growing it keeps references to the other tenants valid.
  std::deque<Tenant> tenants_;
  std::unordered_map<std::string, size_t> index_;
  // Indices of the tenants with waiting or running sequences, so that a step costs what is in
  // flight, not every tenant ever seen.
  std::vector<size_t> active_;
  int32_t num_waiting_ = 0;
};

}  // namespace quilt::engine
