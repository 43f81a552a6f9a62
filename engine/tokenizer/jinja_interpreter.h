// Evaluation of a parsed chat template.
#pragma once

#include <string>

#include "common/status.h"
#include "engine/tokenizer/jinja_ast.h"
#include "engine/tokenizer/jinja_value.h"

namespace quilt::engine::jinja {

// Renders `tmpl` with `globals` as its variables, plus the global functions (range, namespace,
// dict, raise_exception, strftime_now) that globals do not override. Each call has its own
// state, so one template can render on many threads at once. Runaway templates (too many steps,
// too deep recursion, too much output) stop with an error instead of hanging or crashing.
Result<std::string> render(const Template& tmpl, ValueMap globals);

}  // namespace quilt::engine::jinja
