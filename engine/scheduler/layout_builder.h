// Builds a step's StepLayout from the scheduler's plan.
#pragma once

#include <vector>

#include "engine/backend/step_layout.h"
#include "engine/lora/adapter_slots.h"
#include "engine/scheduler/scheduler.h"

namespace quilt::engine {

// Reorders plan.items so that sequences sharing an adapter slot are adjacent (base model first),
// then lays out their tokens. The i-th logit row belongs to the i-th sampling item, in the new order;
// after those come the rows of prompt_logprob_positions() of each item, in the same order.
StepLayout build_step_layout(StepPlan& plan, int32_t block_size, const AdapterSlots& adapters);

}  // namespace quilt::engine
