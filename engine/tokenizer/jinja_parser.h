// Parser of Jinja template source into a syntax tree.
#pragma once

#include <memory>
#include <string_view>

#include "common/status.h"
#include "engine/tokenizer/jinja_ast.h"

namespace quilt::engine::jinja {

// Syntax errors come back as InvalidArgument naming the template line.
Result<std::shared_ptr<const Template>> parse_template(std::string_view source);

}  // namespace quilt::engine::jinja
