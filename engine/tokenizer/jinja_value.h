// Values of the chat-template interpreter, with Python semantics (str(), ==, truth, json.dumps).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"

namespace quilt::engine::jinja {

class Value;
using ValueList = std::vector<Value>;

// A Python dict: keys are strings, iteration follows insertion order.
struct ValueMap {
  enum class Flavor { kDict, kNamespace, kLoop };  // namespaces accept `set ns.attr = ...`
  Flavor flavor = Flavor::kDict;
  std::vector<std::pair<std::string, Value>> entries;

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};

// Globals (range, namespace, raise_exception, ...) and macros.
struct Function {
  std::string name;
  std::function<Result<Value>(const CallArgs&)> call;
};

// An immutable value; lists and dicts are shared, as Python shares them.
class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;                                                           // undefined
  Value(bool b) : v_(b) {}                                                     // NOLINT
  Value(int64_t i) : v_(i) {}                                                  // NOLINT
  Value(int i) : v_(static_cast<int64_t>(i)) {}                                // NOLINT
  Value(double d) : v_(d) {}                                                   // NOLINT
  Value(std::string s) : v_(std::move(s)) {}                                   // NOLINT
  Value(const char* s) : v_(std::string(s)) {}                                 // NOLINT
  Value(ValueList list) : v_(std::make_shared<ValueList>(std::move(list))) {}  // NOLINT
  Value(ValueMap map) : v_(std::make_shared<ValueMap>(std::move(map))) {}      // NOLINT
  Value(std::shared_ptr<ValueMap> map) : v_(std::move(map)) {}                 // NOLINT
  Value(std::shared_ptr<Function> fn) : v_(std::move(fn)) {}                   // NOLINT
  static Value none() {
    Value v;
    v.v_ = None{};
    return v;
  }
  static Value from_json(const nlohmann::json& j);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_function() const { return kind() == Kind::kFunction; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  // Any number (bool, int, float) as a double / an integer.
  double to_double() const;
  int64_t to_int() const;
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const ValueList& as_list() const { return *std::get<std::shared_ptr<ValueList>>(v_); }
  const ValueMap& as_dict() const { return *std::get<std::shared_ptr<ValueMap>>(v_); }
  const std::shared_ptr<ValueMap>& dict_ptr() const {
    return std::get<std::shared_ptr<ValueMap>>(v_);
  }
  const Function& as_function() const { return *std::get<std::shared_ptr<Function>>(v_); }

  // Python truth value; undefined is false.
  bool truthy() const;
  // str(): what {{ value }} prints ("" for undefined, "None", "True", "[1, 'a']").
  std::string str() const;
  // repr(): quoted strings, as inside printed lists and dicts.
  std::string repr() const;
  // The name Python would give the type, for error messages.
  std::string type_name() const;

 private:
  struct Undefined {};
  struct None {};
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<ValueList>,
               std::shared_ptr<ValueMap>, std::shared_ptr<Function>>
      v_;
};

// Python ==.
bool equals(const Value& a, const Value& b);
// Python <, for numbers, strings and lists; an error for other mixes.
Result<bool> less_than(const Value& a, const Value& b);
// Python repr() of a float ("1.0", "0.1", "1e+20").
std::string format_float(double d);

struct JsonOptions {
  int indent = -1;          // < 0: one line
  std::string indent_text;  // indent as a string (when given as one)
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;  // escape non-ASCII as \uXXXX
};
// json.dumps(value, ensure_ascii=False, ...) as Hugging Face's tojson filter calls it.
Result<std::string> to_json(const Value& value, const JsonOptions& options);

}  // namespace quilt::engine::jinja
