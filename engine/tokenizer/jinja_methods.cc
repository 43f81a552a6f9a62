// Member access, Python methods of str / dict, and the global functions of chat templates.
#include <chrono>
#include <ctime>

#include "engine/tokenizer/jinja_builtins.h"
#include "engine/tokenizer/jinja_strings.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine::jinja {
namespace {

// Larger range() results are refused: a template has no business building them.
constexpr int64_t kMaxRange = 1'000'000;

Status type_error(const std::string& what) { return Status::InvalidArgument(what); }

std::optional<std::string> optional_string_arg(const CallArgs& args, size_t index,
                                               std::string_view name) {
  const Value* v = find_arg(args, index, name);
  if (v == nullptr || v->is_none() || v->is_undefined()) return std::nullopt;
  return v->str();
}

int64_t int_arg(const CallArgs& args, size_t index, std::string_view name, int64_t fallback) {
  const Value* v = find_arg(args, index, name);
  return v != nullptr && v->is_number() ? v->to_int() : fallback;
}

// Python normalizes a slice bound against the length like this.
int64_t clamp_bound(const Value& v, int64_t length, int64_t step, bool is_start) {
  if (v.is_undefined() || v.is_none()) {
    if (step > 0) return is_start ? 0 : length;
    return is_start ? length - 1 : -1;
  }
  int64_t i = v.to_int();
  if (i < 0) i += length;
  if (step > 0) return std::clamp<int64_t>(i, 0, length);
  return std::clamp<int64_t>(i, -1, length - 1);
}

Result<Value> string_method(const std::string& s, const std::string& name, const CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const StripSide side = name == "strip"    ? StripSide::kBoth
                           : name == "lstrip" ? StripSide::kLeft
                                              : StripSide::kRight;
    return Value(py_strip(s, optional_string_arg(args, 0, "chars"), side));
  }
  if (name == "split" || name == "rsplit") {
    const std::optional<std::string> sep = optional_string_arg(args, 0, "sep");
    if (sep && sep->empty()) return type_error("split(): empty separator");
    ValueList parts;
    for (std::string& p : py_split(s, sep, int_arg(args, 1, "maxsplit", -1), name == "rsplit")) {
      parts.emplace_back(std::move(p));
    }
    return Value(std::move(parts));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* what = find_arg(args, 0, "prefix");
    if (what == nullptr) what = find_arg(args, 0, "suffix");
    if (what == nullptr) return type_error(name + "() takes a prefix");
    ValueList options = what->is_list() ? what->as_list() : ValueList{*what};
    for (const Value& o : options) {
      if (!o.is_string()) return type_error(name + "() needs strings");
      const std::string& p = o.as_string();
      const bool hit = name == "startswith" ? s.compare(0, p.size(), p) == 0
                                            : s.size() >= p.size() &&
                                                  s.compare(s.size() - p.size(), p.size(), p) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "upper") return Value(py_upper(s));
  if (name == "lower") return Value(py_lower(s));
  if (name == "title") return Value(py_title(s));
  if (name == "capitalize") return Value(py_capitalize(s));
  if (name == "replace") {
    const Value* from = find_arg(args, 0, "old");
    const Value* to = find_arg(args, 1, "new");
    if (from == nullptr || to == nullptr || !from->is_string() || !to->is_string()) {
      return type_error("replace() takes two strings");
    }
    return Value(py_replace(s, from->as_string(), to->as_string(), int_arg(args, 2, "count", -1)));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    const Value* sub = find_arg(args, 0, "sub");
    if (sub == nullptr || !sub->is_string()) return type_error(name + "() takes a string");
    if (name == "count") return Value(py_count(s, sub->as_string()));
    return Value(py_find(s, sub->as_string(), name == "rfind"));
  }
  if (name == "join") {
    const Value* items = find_arg(args, 0, "iterable");
    if (items == nullptr) return type_error("join() takes an iterable");
    QUILT_ASSIGN_OR_RETURN(ValueList list, iterate(*items));
    std::string out;
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) return type_error("join(): sequence item is not a str");
      if (i > 0) out += s;
      out += list[i].as_string();
    }
    return Value(std::move(out));
  }
  if (name == "splitlines") {
    ValueList lines;
    size_t pos = 0;
    while (pos < s.size()) {
      size_t end = s.find_first_of("\r\n", pos);
      if (end == std::string::npos) end = s.size();
      lines.emplace_back(s.substr(pos, end - pos));
      pos = end + ((s.compare(end, 2, "\r\n") == 0) ? 2 : 1);
    }
    return Value(std::move(lines));
  }
  if (name == "isspace") return Value(py_isspace(s));
  if (name == "isdigit") return Value(py_isdigit(s));
  if (name == "islower") return Value(py_islower(s));
  if (name == "isupper") return Value(py_isupper(s));
  return type_error("'str' object has no attribute '" + name + "'");
}

Result<Value> dict_method(const ValueMap& d, const std::string& name, const CallArgs& args) {
  if (name == "items" || name == "keys" || name == "values") {
    ValueList out;
    out.reserve(d.entries.size());
    for (const auto& [k, v] : d.entries) {
      if (name == "items") {
        out.emplace_back(ValueList{Value(k), v});
      } else {
        out.push_back(name == "keys" ? Value(k) : v);
      }
    }
    return Value(std::move(out));
  }
  if (name == "get") {
    const Value* key = find_arg(args, 0, "key");
    if (key == nullptr) return type_error("get() takes a key");
    const Value* found = key->is_string() ? d.find(key->as_string()) : nullptr;
    if (found != nullptr) return *found;
    const Value* fallback = find_arg(args, 1, "default");
    return fallback != nullptr ? *fallback : Value::none();
  }
  if (name == "cycle" && d.flavor == ValueMap::Flavor::kLoop) {
    if (args.positional.empty()) return type_error("loop.cycle() takes at least one value");
    const Value* index = d.find("index0");
    const int64_t i = index != nullptr ? index->to_int() : 0;
    return args.positional[static_cast<size_t>(i) % args.positional.size()];
  }
  return type_error("'dict' object has no attribute '" + name + "'");
}

Result<Value> fn_range(const CallArgs& args) {
  for (const Value& v : args.positional) {
    if (!v.is_int() && !v.is_bool()) return type_error("range() takes integers");
  }
  int64_t start = 0, stop = 0, step = 1;
  switch (args.positional.size()) {
    case 1:
      stop = args.positional[0].to_int();
      break;
    case 2:
      start = args.positional[0].to_int();
      stop = args.positional[1].to_int();
      break;
    case 3:
      start = args.positional[0].to_int();
      stop = args.positional[1].to_int();
      step = args.positional[2].to_int();
      break;
    default:
      return type_error("range() takes 1 to 3 arguments");
  }
  if (step == 0) return type_error("range() step must not be zero");
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange) return type_error("range() too large");
    out.emplace_back(i);
  }
  return Value(std::move(out));
}

// namespace(...) and dict(...): from keyword arguments and/or one dict.
Result<Value> make_map(const CallArgs& args, ValueMap::Flavor flavor, const char* fn) {
  auto map = std::make_shared<ValueMap>();
  map->flavor = flavor;
  for (const Value& v : args.positional) {
    if (!v.is_dict()) return type_error(std::string(fn) + "() takes a dict or keyword arguments");
    for (const auto& [k, x] : v.as_dict().entries) map->set(k, x);
  }
  for (const auto& [k, v] : args.named) map->set(k, v);
  return Value(std::move(map));
}

void add_function(ValueMap& globals, const std::string& name,
                  std::function<Result<Value>(const CallArgs&)> fn) {
  auto f = std::make_shared<Function>();
  f->name = name;
  f->call = std::move(fn);
  globals.set(name, Value(std::move(f)));
}

}  // namespace

const Value* find_arg(const CallArgs& args, size_t index, std::string_view name) {
  if (index < args.positional.size()) return &args.positional[index];
  for (const auto& [k, v] : args.named) {
    if (k == name) return &v;
  }
  return nullptr;
}

Result<ValueList> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& [k, x] : v.as_dict().entries) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      const std::vector<uint32_t> cps = utf8_to_code_points(v.as_string());
      for (size_t i = 0; i < cps.size(); ++i)
        chars.emplace_back(code_points_to_utf8(cps, i, i + 1));
      return chars;
    }
    default:
      return type_error("'" + v.type_name() + "' object is not iterable");
  }
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(name);
    return v != nullptr ? *v : Value();
  }
  return Value();
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(key.is_string() ? key.as_string() : key.str());
    return v != nullptr ? *v : Value();
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.to_int();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? obj.as_list()[static_cast<size_t>(i)] : Value();
    }
    const std::vector<uint32_t> cps = utf8_to_code_points(obj.as_string());
    const int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    return Value(code_points_to_utf8(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value();
}

Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop,
                        const Value& step_v) {
  for (const Value* v : {&start, &stop, &step_v}) {
    if (!v->is_undefined() && !v->is_none() && !v->is_int() && !v->is_bool()) {
      return type_error("slice indices must be integers or None");
    }
  }
  const int64_t step = step_v.is_undefined() || step_v.is_none() ? 1 : step_v.to_int();
  if (step == 0) return type_error("slice step cannot be zero");
  auto indices = [&](int64_t length) {
    std::vector<size_t> out;
    const int64_t b = clamp_bound(start, length, step, true);
    const int64_t e = clamp_bound(stop, length, step, false);
    for (int64_t i = b; step > 0 ? i < e : i > e; i += step) out.push_back(static_cast<size_t>(i));
    return out;
  };
  if (obj.is_list()) {
    const ValueList& list = obj.as_list();
    ValueList out;
    for (size_t i : indices(static_cast<int64_t>(list.size()))) out.push_back(list[i]);
    return Value(std::move(out));
  }
  if (obj.is_string()) {
    const std::vector<uint32_t> cps = utf8_to_code_points(obj.as_string());
    std::string out;
    for (size_t i : indices(static_cast<int64_t>(cps.size()))) utf8_append(out, cps[i]);
    return Value(std::move(out));
  }
  return type_error("'" + obj.type_name() + "' object is not subscriptable");
}

bool has_method(const Value& self, const std::string& name) {
  static const char* const kStr[] = {
      "strip", "lstrip", "rstrip",     "split",      "rsplit",  "startswith", "endswith",
      "upper", "lower",  "title",      "capitalize", "replace", "find",       "rfind",
      "count", "join",   "splitlines", "isspace",    "isdigit", "islower",    "isupper"};
  if (self.is_string()) {
    for (const char* m : kStr) {
      if (name == m) return true;
    }
    return false;
  }
  if (self.is_dict()) {
    if (self.as_dict().flavor == ValueMap::Flavor::kNamespace) return false;
    if (name == "cycle") return self.as_dict().flavor == ValueMap::Flavor::kLoop;
    return name == "items" || name == "keys" || name == "values" || name == "get";
  }
  return false;
}

Result<Value> call_method(const Value& self, const std::string& name, const CallArgs& args) {
  if (self.is_string()) return string_method(self.as_string(), name, args);
  if (self.is_dict()) return dict_method(self.as_dict(), name, args);
  return type_error("'" + self.type_name() + "' object has no attribute '" + name + "'");
}

void add_global_functions(ValueMap& globals) {
  add_function(globals, "range", fn_range);
  add_function(globals, "namespace", [](const CallArgs& args) {
    return make_map(args, ValueMap::Flavor::kNamespace, "namespace");
  });
  add_function(globals, "dict", [](const CallArgs& args) {
    return make_map(args, ValueMap::Flavor::kDict, "dict");
  });
  add_function(globals, "raise_exception", [](const CallArgs& args) -> Result<Value> {
    const Value* msg = find_arg(args, 0, "message");
    return Status::InvalidArgument(msg != nullptr ? msg->str() : "raise_exception() called");
  });
  add_function(globals, "strftime_now", [](const CallArgs& args) -> Result<Value> {
    const Value* fmt = find_arg(args, 0, "format");
    if (fmt == nullptr || !fmt->is_string()) return type_error("strftime_now() takes a format");
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm local{};
    localtime_r(&now, &local);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), fmt->as_string().c_str(), &local);
    return Value(std::string(buf, n));
  });
}

}  // namespace quilt::engine::jinja
