// Filters, tests, methods and global functions of the chat-template interpreter.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "engine/tokenizer/jinja_value.h"

namespace quilt::engine::jinja {

// The argument at `index`, or the keyword argument `name`; nullptr when neither was given.
const Value* find_arg(const CallArgs& args, size_t index, std::string_view name);

// Items of an iterable: list elements, dict keys, string characters; undefined is empty.
Result<ValueList> iterate(const Value& v);

// obj.name / obj[key] with Jinja's lookup rules; missing members are undefined. The caller
// reports access on an undefined object.
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
// Jinja's attribute getter for filters: "a.b.0" walks dict keys and list indices.
Value get_path(const Value& obj, const std::string& path);
// Python `item in container`; an undefined container contains nothing.
Result<bool> contains(const Value& container, const Value& item);
// obj[start:stop:step] for lists and strings (absent parts are undefined values).
Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// `{{ x | name(args) }}`. Unknown filters are errors.
Result<Value> apply_filter(const std::string& name, const Value& input, const CallArgs& args);
// `x is name(args)`. Unknown tests are errors.
Result<bool> apply_test(const std::string& name, const Value& input, const CallArgs& args);

// Python methods of str and dict (and loop.cycle): whether `self.name(...)` is one, and calling it.
bool has_method(const Value& self, const std::string& name);
Result<Value> call_method(const Value& self, const std::string& name, const CallArgs& args);

// range, namespace, dict, raise_exception, strftime_now, added to the render's globals.
void add_global_functions(ValueMap& globals);

}  // namespace quilt::engine::jinja
