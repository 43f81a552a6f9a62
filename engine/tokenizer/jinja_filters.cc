// Jinja filters and tests, with Hugging Face's tojson (json.dumps, ensure_ascii=False, no sorting).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "engine/tokenizer/jinja_builtins.h"
#include "engine/tokenizer/jinja_strings.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine::jinja {
namespace {

using FilterFn = Result<Value> (*)(const Value&, const CallArgs&);

Status type_error(const std::string& what) { return Status::InvalidArgument(what); }

bool bool_arg(const CallArgs& args, size_t index, std::string_view name, bool fallback) {
  const Value* v = find_arg(args, index, name);
  return v != nullptr ? v->truthy() : fallback;
}

std::optional<std::string> attribute_arg(const CallArgs& args, size_t index) {
  const Value* v = find_arg(args, index, "attribute");
  if (v == nullptr || v->is_none() || v->is_undefined()) return std::nullopt;
  return v->str();
}

Result<Value> f_length(const Value& v, const CallArgs&) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value(0);
    case Value::Kind::kString:
      return Value(static_cast<int64_t>(utf8_length(v.as_string())));
    case Value::Kind::kList:
      return Value(static_cast<int64_t>(v.as_list().size()));
    case Value::Kind::kDict:
      return Value(static_cast<int64_t>(v.as_dict().entries.size()));
    default:
      return type_error("object of type '" + v.type_name() + "' has no len()");
  }
}

Result<Value> f_tojson(const Value& v, const CallArgs& args) {
  // Positional order of transformers' tojson(x, ensure_ascii, indent, separators, sort_keys).
  JsonOptions o;
  o.ensure_ascii = bool_arg(args, 0, "ensure_ascii", false);
  if (const Value* indent = find_arg(args, 1, "indent"); indent && !indent->is_none()) {
    if (indent->is_string()) {
      o.indent_text = indent->as_string();
      if (o.indent_text.empty()) o.indent = 0;
    } else if (indent->is_int()) {
      o.indent = static_cast<int>(std::clamp<int64_t>(indent->as_int(), 0, 64));
    } else {
      return type_error("tojson: indent must be an int or a string");
    }
    o.item_separator = ",";
  }
  if (const Value* seps = find_arg(args, 2, "separators"); seps && !seps->is_none()) {
    if (!seps->is_list() || seps->as_list().size() != 2 || !seps->as_list()[0].is_string() ||
        !seps->as_list()[1].is_string()) {
      return type_error("tojson: separators must be two strings");
    }
    o.item_separator = seps->as_list()[0].as_string();
    o.key_separator = seps->as_list()[1].as_string();
  }
  o.sort_keys = bool_arg(args, 3, "sort_keys", false);
  QUILT_ASSIGN_OR_RETURN(std::string json, to_json(v, o));
  return Value(std::move(json));
}

Result<Value> f_default(const Value& v, const CallArgs& args) {
  const bool boolean = bool_arg(args, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.truthy())) {
    const Value* fallback = find_arg(args, 0, "default_value");
    return fallback != nullptr ? *fallback : Value("");
  }
  return v;
}

Result<Value> f_join(const Value& v, const CallArgs& args) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const Value* sep = find_arg(args, 0, "d");
  const std::string separator = sep != nullptr ? sep->str() : "";
  const std::optional<std::string> attribute = attribute_arg(args, 1);
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += (attribute ? get_path(items[i], *attribute) : items[i]).str();
  }
  return Value(std::move(out));
}

Result<Value> f_first(const Value& v, const CallArgs&) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  return items.empty() ? Value() : items.front();
}

Result<Value> f_last(const Value& v, const CallArgs&) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  return items.empty() ? Value() : items.back();
}

Result<Value> f_int(const Value& v, const CallArgs& args) {
  const Value* fallback = find_arg(args, 0, "default");
  const Value otherwise = fallback != nullptr ? *fallback : Value(0);
  if (v.is_number()) return Value(v.to_int());
  if (!v.is_string()) return otherwise;
  const std::string s = py_strip(v.as_string(), std::nullopt, StripSide::kBoth);
  const Value* base_v = find_arg(args, 1, "base");
  const int base = base_v != nullptr && base_v->is_int() ? static_cast<int>(base_v->as_int()) : 10;
  errno = 0;
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, base);
  if (!s.empty() && end == s.c_str() + s.size() && errno == 0)
    return Value(static_cast<int64_t>(i));
  const double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d)) {
    return Value(static_cast<int64_t>(d));
  }
  return otherwise;
}

Result<Value> f_float(const Value& v, const CallArgs& args) {
  const Value* fallback = find_arg(args, 0, "default");
  const Value otherwise = fallback != nullptr ? *fallback : Value(0.0);
  if (v.is_number()) return Value(v.to_double());
  if (!v.is_string()) return otherwise;
  const std::string s = py_strip(v.as_string(), std::nullopt, StripSide::kBoth);
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size() ? Value(d) : otherwise;
}

Result<Value> f_list(const Value& v, const CallArgs&) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  return Value(std::move(items));
}

Result<Value> f_items(const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value(ValueList{});
  if (!v.is_dict()) return type_error("items filter: expected a mapping, got " + v.type_name());
  ValueList out;
  for (const auto& [k, x] : v.as_dict().entries) out.emplace_back(ValueList{Value(k), x});
  return Value(std::move(out));
}

Result<Value> f_replace(const Value& v, const CallArgs& args) {
  const Value* from = find_arg(args, 0, "old");
  const Value* to = find_arg(args, 1, "new");
  if (from == nullptr || to == nullptr) return type_error("replace filter takes old and new");
  const Value* count = find_arg(args, 2, "count");
  const int64_t n = count != nullptr && count->is_int() ? count->as_int() : -1;
  return Value(py_replace(v.str(), from->str(), to->str(), n));
}

Result<Value> f_trim(const Value& v, const CallArgs& args) {
  const Value* chars = find_arg(args, 0, "chars");
  std::optional<std::string> set;
  if (chars != nullptr && !chars->is_none() && !chars->is_undefined()) set = chars->str();
  return Value(py_strip(v.str(), set, StripSide::kBoth));
}

Result<Value> f_escape(const Value& v, const CallArgs&) {
  std::string out;
  for (char c : v.str()) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Value(std::move(out));
}

Result<Value> f_abs(const Value& v, const CallArgs&) {
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_number()) return Value(static_cast<int64_t>(std::llabs(v.to_int())));
  return type_error("bad operand type for abs(): '" + v.type_name() + "'");
}

Result<Value> f_round(const Value& v, const CallArgs& args) {
  if (!v.is_number()) return type_error("round filter: expected a number");
  const Value* p = find_arg(args, 0, "precision");
  const int64_t precision = p != nullptr && p->is_int() ? p->as_int() : 0;
  const Value* m = find_arg(args, 1, "method");
  const std::string method = m != nullptr ? m->str() : "common";
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.to_double() * scale;
  double r;
  if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else if (method == "common") {
    r = std::nearbyint(x);  // Python's round(): halves go to even
  } else {
    return type_error("round filter: method must be common, ceil or floor");
  }
  return Value(r / scale);
}

Result<Value> f_reverse(const Value& v, const CallArgs&) {
  if (v.is_string()) {
    std::vector<uint32_t> cps = utf8_to_code_points(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(code_points_to_utf8(cps, 0, cps.size()));
  }
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

// The value sorting and min/max compare: an attribute of it, lowercased unless case_sensitive.
Value sort_key(const Value& v, const std::optional<std::string>& attribute, bool case_sensitive) {
  Value key = attribute ? get_path(v, *attribute) : v;
  if (!case_sensitive && key.is_string()) return Value(py_lower(key.as_string()));
  return key;
}

Result<Value> f_sort(const Value& v, const CallArgs& args) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const bool reverse = bool_arg(args, 0, "reverse", false);
  const bool case_sensitive = bool_arg(args, 1, "case_sensitive", false);
  const std::optional<std::string> attribute = attribute_arg(args, 2);
  Status failure;
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    auto lt = reverse ? less_than(sort_key(b, attribute, case_sensitive),
                                  sort_key(a, attribute, case_sensitive))
                      : less_than(sort_key(a, attribute, case_sensitive),
                                  sort_key(b, attribute, case_sensitive));
    if (!lt.ok()) {
      failure = lt.status();
      return false;
    }
    return *lt;
  });
  QUILT_RETURN_IF_ERROR(failure);
  return Value(std::move(items));
}

Result<Value> min_max(const Value& v, const CallArgs& args, bool want_max) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  if (items.empty()) return Value();
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const std::optional<std::string> attribute = attribute_arg(args, 1);
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    const Value a = sort_key(items[i], attribute, case_sensitive);
    const Value b = sort_key(items[best], attribute, case_sensitive);
    QUILT_ASSIGN_OR_RETURN(bool better, want_max ? less_than(b, a) : less_than(a, b));
    if (better) best = i;
  }
  return items[best];
}
Result<Value> f_min(const Value& v, const CallArgs& args) { return min_max(v, args, false); }
Result<Value> f_max(const Value& v, const CallArgs& args) { return min_max(v, args, true); }

Result<Value> f_sum(const Value& v, const CallArgs& args) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const std::optional<std::string> attribute = attribute_arg(args, 0);
  const Value* start = find_arg(args, 1, "start");
  Value total = start != nullptr ? *start : Value(0);
  for (const Value& item : items) {
    const Value x = attribute ? get_path(item, *attribute) : item;
    if (!x.is_number() || !total.is_number())
      return type_error("sum filter: items must be numbers");
    if (x.is_float() || total.is_float()) {
      total = Value(total.to_double() + x.to_double());
    } else {
      total = Value(total.to_int() + x.to_int());
    }
  }
  return total;
}

Result<Value> f_unique(const Value& v, const CallArgs& args) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const std::optional<std::string> attribute = attribute_arg(args, 1);
  ValueList out, seen;
  for (const Value& item : items) {
    const Value key = sort_key(item, attribute, case_sensitive);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value(std::move(out));
}

Result<Value> f_dictsort(const Value& v, const CallArgs& args) {
  if (!v.is_dict()) return type_error("dictsort filter: expected a mapping");
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const Value* by = find_arg(args, 1, "by");
  const size_t pos = by != nullptr && by->str() == "value" ? 1 : 0;
  ValueList pairs;
  for (const auto& [k, x] : v.as_dict().entries) pairs.emplace_back(ValueList{Value(k), x});
  CallArgs sort_args;
  sort_args.named = {{"reverse", Value(bool_arg(args, 2, "reverse", false))},
                     {"case_sensitive", Value(case_sensitive)},
                     {"attribute", Value(static_cast<int64_t>(pos)).str()}};
  return f_sort(Value(std::move(pairs)), sort_args);
}

Result<Value> f_indent(const Value& v, const CallArgs& args) {
  const Value* width_v = find_arg(args, 0, "width");
  const std::string pad = width_v == nullptr ? std::string(4, ' ')
                          : width_v->is_string()
                              ? width_v->as_string()
                              : std::string(std::clamp<int64_t>(width_v->to_int(), 0, 256), ' ');
  const bool first = bool_arg(args, 1, "first", false);
  const bool blank = bool_arg(args, 2, "blank", false);
  const std::vector<std::string> lines = py_split(v.str(), std::string("\n"), -1, false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    const bool indent =
        (i > 0 || first) && (blank || !py_strip(lines[i], std::nullopt, StripSide::kBoth).empty());
    if (indent) out += pad;
    out += lines[i];
  }
  return Value(std::move(out));
}

// select / reject / selectattr / rejectattr.
Result<Value> filter_items(const Value& v, const CallArgs& args, bool by_attribute, bool keep) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty()) return type_error("selectattr/rejectattr need an attribute");
    attribute = args.positional[next++].str();
  }
  std::optional<std::string> test;
  if (next < args.positional.size()) test = args.positional[next++].str();
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next),
                              args.positional.end());
  ValueList out;
  for (const Value& item : items) {
    const Value subject = by_attribute ? get_path(item, attribute) : item;
    bool pass = subject.truthy();
    if (test) {
      QUILT_ASSIGN_OR_RETURN(pass, apply_test(*test, subject, test_args));
    }
    if (pass == keep) out.push_back(item);
  }
  return Value(std::move(out));
}
Result<Value> f_select(const Value& v, const CallArgs& a) {
  return filter_items(v, a, false, true);
}
Result<Value> f_reject(const Value& v, const CallArgs& a) {
  return filter_items(v, a, false, false);
}
Result<Value> f_selectattr(const Value& v, const CallArgs& a) {
  return filter_items(v, a, true, true);
}
Result<Value> f_rejectattr(const Value& v, const CallArgs& a) {
  return filter_items(v, a, true, false);
}

Result<Value> f_map(const Value& v, const CallArgs& args) {
  QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  ValueList out;
  if (const Value* attribute = find_arg(args, SIZE_MAX, "attribute")) {
    const Value* fallback = find_arg(args, SIZE_MAX, "default");
    for (const Value& item : items) {
      Value x = get_path(item, attribute->str());
      out.push_back(x.is_undefined() && fallback != nullptr ? *fallback : std::move(x));
    }
    return Value(std::move(out));
  }
  if (args.positional.empty()) return type_error("map filter needs a filter name or attribute=");
  const std::string filter = args.positional[0].str();
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.named = args.named;
  for (const Value& item : items) {
    QUILT_ASSIGN_OR_RETURN(Value x, apply_filter(filter, item, rest));
    out.push_back(std::move(x));
  }
  return Value(std::move(out));
}

Result<Value> f_safe(const Value& v, const CallArgs&) { return v; }  // nothing is auto-escaped
Result<Value> f_string(const Value& v, const CallArgs&) { return Value(v.str()); }
Result<Value> f_upper(const Value& v, const CallArgs&) { return Value(py_upper(v.str())); }
Result<Value> f_lower(const Value& v, const CallArgs&) { return Value(py_lower(v.str())); }
Result<Value> f_title(const Value& v, const CallArgs&) { return Value(jinja_title(v.str())); }
Result<Value> f_capitalize(const Value& v, const CallArgs&) {
  return Value(py_capitalize(v.str()));
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> kFilters = {
      {"length", f_length},
      {"count", f_length},
      {"tojson", f_tojson},
      {"default", f_default},
      {"d", f_default},
      {"join", f_join},
      {"first", f_first},
      {"last", f_last},
      {"int", f_int},
      {"float", f_float},
      {"list", f_list},
      {"items", f_items},
      {"replace", f_replace},
      {"trim", f_trim},
      {"escape", f_escape},
      {"e", f_escape},
      {"forceescape", f_escape},
      {"abs", f_abs},
      {"round", f_round},
      {"reverse", f_reverse},
      {"sort", f_sort},
      {"min", f_min},
      {"max", f_max},
      {"sum", f_sum},
      {"unique", f_unique},
      {"dictsort", f_dictsort},
      {"indent", f_indent},
      {"select", f_select},
      {"reject", f_reject},
      {"selectattr", f_selectattr},
      {"rejectattr", f_rejectattr},
      {"map", f_map},
      {"safe", f_safe},
      {"string", f_string},
      {"upper", f_upper},
      {"lower", f_lower},
      {"title", f_title},
      {"capitalize", f_capitalize},
  };
  return kFilters;
}

Result<bool> compare_test(const std::string& op, const Value& v, const CallArgs& args) {
  const Value* other = find_arg(args, 0, "b");
  if (other == nullptr) return type_error("test '" + op + "' needs a value to compare with");
  if (op == "eq") return equals(v, *other);
  if (op == "ne") return !equals(v, *other);
  if (op == "lt") return less_than(v, *other);
  if (op == "gt") return less_than(*other, v);
  QUILT_ASSIGN_OR_RETURN(bool lt, op == "le" ? less_than(*other, v) : less_than(v, *other));
  return !lt;  // le: not (other < v); ge: not (v < other)
}

}  // namespace

Value get_path(const Value& obj, const std::string& path) {
  Value current = obj;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part =
        path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    const bool numeric =
        !part.empty() && part.size() < 18 &&
        std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current = numeric ? get_item(current, Value(static_cast<int64_t>(std::stoll(part))))
                      : get_item(current, Value(part));
    if (dot == std::string::npos || current.is_undefined()) return current;
    pos = dot + 1;
  }
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        return type_error("'in <string>' requires string as left operand, not " + item.type_name());
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& x : container.as_list()) {
        if (equals(x, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return item.is_string() && container.as_dict().find(item.as_string());
    default:
      return type_error("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Result<Value> apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  const auto& table = filters();
  auto it = table.find(name);
  if (it == table.end()) return type_error("no filter named '" + name + "'");
  return it->second(input, args);
}

Result<bool> apply_test(const std::string& name, const Value& v, const CallArgs& args) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && v.as_dict().flavor == ValueMap::Flavor::kDict;
  if (name == "iterable") {
    return v.kind() == K::kList || v.kind() == K::kDict || v.kind() == K::kString ||
           v.is_undefined();
  }
  if (name == "sequence")
    return v.kind() == K::kList || v.kind() == K::kDict || v.kind() == K::kString;
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "lower") return py_islower(v.str());
  if (name == "upper") return py_isupper(v.str());
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) return type_error("test '" + name + "' needs an integer");
    if (name == "even") return v.to_int() % 2 == 0;
    if (name == "odd") return v.to_int() % 2 != 0;
    const Value* d = find_arg(args, 0, "num");
    if (d == nullptr || !d->is_int() || d->as_int() == 0)
      return type_error("divisibleby needs a non-zero integer");
    return v.to_int() % d->as_int() == 0;
  }
  if (name == "sameas") {
    const Value* other = find_arg(args, 0, "other");
    if (other == nullptr) return type_error("sameas needs a value");
    if (v.kind() != other->kind()) return false;
    if (v.is_list()) return &v.as_list() == &other->as_list();
    if (v.is_dict()) return &v.as_dict() == &other->as_dict();
    return equals(v, *other);
  }
  if (name == "in") {
    const Value* seq = find_arg(args, 0, "seq");
    if (seq == nullptr) return type_error("test 'in' needs a container");
    return contains(*seq, v);
  }
  static const std::unordered_map<std::string, std::string> kComparisons = {
      {"eq", "eq"}, {"equalto", "eq"},     {"==", "eq"}, {"ne", "ne"}, {"!=", "ne"},
      {"lt", "lt"}, {"lessthan", "lt"},    {"<", "lt"},  {"le", "le"}, {"<=", "le"},
      {"gt", "gt"}, {"greaterthan", "gt"}, {">", "gt"},  {"ge", "ge"}, {">=", "ge"}};
  if (auto it = kComparisons.find(name); it != kComparisons.end()) {
    return compare_test(it->second, v, args);
  }
  return type_error("no test named '" + name + "'");
}

}  // namespace quilt::engine::jinja
