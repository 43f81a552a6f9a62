// Tree-walking interpreter: Jinja scoping (loops and macros get their own frames, if does not),
// Python operator semantics, and Jinja's strict Undefined (printing it is fine, using it is not).
#include "engine/tokenizer/jinja_interpreter.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "engine/tokenizer/jinja_builtins.h"

namespace quilt::engine::jinja {
namespace {

constexpr int64_t kMaxSteps = 1'000'000;  // statements and loop iterations per render
constexpr size_t kMaxOutputBytes = 64u << 20;
constexpr int kMaxCallDepth = 64;

Status type_error(const std::string& what) { return Status::InvalidArgument(what); }

// A readable name for an expression in "'x.y' is undefined" messages.
std::string describe(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kName:
      return e.name;
    case Expr::Kind::kGetAttr:
      return describe(*e.args[0]) + "." + e.name;
    case Expr::Kind::kGetItem:
      return describe(*e.args[0]) + "[" +
             (e.args[1]->kind == Expr::Kind::kLiteral ? e.args[1]->literal.repr() : "...") + "]";
    case Expr::Kind::kCall:
      return describe(*e.args[0]) + "()";
    default:
      return "value";
  }
}

Result<Value> arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "+" && a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
  if (op == "+" && a.is_list() && b.is_list()) {
    ValueList out = a.as_list();
    out.insert(out.end(), b.as_list().begin(), b.as_list().end());
    return Value(std::move(out));
  }
  if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = a.is_string() || a.is_list() ? a : b;
    const Value& count = &seq == &a ? b : a;
    if (!count.is_int() && !count.is_bool()) {
      return type_error("can't multiply sequence by non-int of type '" + count.type_name() + "'");
    }
    const int64_t n = std::max<int64_t>(count.to_int(), 0);
    const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
    if (unit > 0 && static_cast<uint64_t>(n) > kMaxOutputBytes / unit) {
      return type_error("sequence repetition too large");
    }
    if (seq.is_string()) {
      std::string out;
      for (int64_t i = 0; i < n; ++i) out += seq.as_string();
      return Value(std::move(out));
    }
    ValueList out;
    for (int64_t i = 0; i < n; ++i)
      out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
    return Value(std::move(out));
  }
  if (!a.is_number() || !b.is_number()) {
    return type_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
                      b.type_name() + "'");
  }
  if (op == "/") {
    if (b.to_double() == 0.0) return type_error("division by zero");
    return Value(a.to_double() / b.to_double());
  }
  if (a.is_float() || b.is_float()) {
    const double x = a.to_double(), y = b.to_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") return Value(std::pow(x, y));
    if (y == 0.0) return type_error("float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    double r = std::fmod(x, y);
    if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
    return Value(r);
  }
  const int64_t x = a.to_int(), y = b.to_int();
  int64_t r = 0;
  bool overflow = false;
  if (op == "+") {
    overflow = __builtin_add_overflow(x, y, &r);
  } else if (op == "-") {
    overflow = __builtin_sub_overflow(x, y, &r);
  } else if (op == "*") {
    overflow = __builtin_mul_overflow(x, y, &r);
  } else if (op == "**") {
    if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
    r = 1;
    for (int64_t i = 0; i < y && !overflow; ++i) overflow = __builtin_mul_overflow(r, x, &r);
  } else {
    if (y == 0) return type_error("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) return type_error("integer overflow");
    r = op == "//" ? x / y - ((x % y != 0) && ((x < 0) != (y < 0))) : x % y;
    if (op == "%" && r != 0 && ((r < 0) != (y < 0))) r += y;
  }
  if (overflow) return type_error("integer overflow in " + op);
  return Value(r);
}

class Interpreter {
 public:
  explicit Interpreter(ValueMap globals) {
    frames_.emplace_back();
    ValueMap builtins;
    add_global_functions(builtins);
    for (auto& [k, v] : builtins.entries) frames_[0][k] = std::move(v);
    for (auto& [k, v] : globals.entries) frames_[0][k] = std::move(v);
  }

  Result<std::string> run(const Template& t) {
    std::string out;
    out_ = &out;
    Flow flow = Flow::kNormal;
    QUILT_RETURN_IF_ERROR(exec(t.body, &flow));
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Frame = std::unordered_map<std::string, Value>;

  Value lookup(const std::string& name) const {
    for (size_t i = frames_.size(); i-- > base_;) {
      if (auto it = frames_[i].find(name); it != frames_[i].end()) return it->second;
    }
    if (base_ > 0) {
      if (auto it = frames_[0].find(name); it != frames_[0].end()) return it->second;
    }
    return Value();
  }

  Status located(int line, const Status& s) {
    if (s.ok() || raised_ || s.message().rfind("template line ", 0) == 0) return s;
    return s.with_context("template line " + std::to_string(line));
  }

  Status exec(const StmtList& body, Flow* flow) {
    for (const StmtPtr& s : body) {
      QUILT_RETURN_IF_ERROR(located(s->line, exec_stmt(*s, flow)));
      if (*flow != Flow::kNormal) return Status::OK();
    }
    return Status::OK();
  }

  Status write(std::string_view text) {
    out_->append(text);
    if (out_->size() > kMaxOutputBytes) return type_error("template output too large");
    return Status::OK();
  }

  Status exec_stmt(const Stmt& s, Flow* flow) {
    if (++steps_ > kMaxSteps) return type_error("template ran too long");
    switch (s.kind) {
      case Stmt::Kind::kText:
        return write(s.text);
      case Stmt::Kind::kOutput: {
        QUILT_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
        return write(v.str());
      }
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches) {
          QUILT_ASSIGN_OR_RETURN(Value c, eval(*cond));
          if (c.truthy()) return exec(body, flow);
        }
        return exec(s.else_body, flow);
      case Stmt::Kind::kFor:
        return exec_for(s);
      case Stmt::Kind::kSet: {
        QUILT_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
        return assign(s, std::move(v));
      }
      case Stmt::Kind::kSetBlock: {
        QUILT_ASSIGN_OR_RETURN(std::string text, capture(s.body));
        return assign(s, Value(std::move(text)));
      }
      case Stmt::Kind::kMacro: {
        auto fn = std::make_shared<Function>();
        fn->name = s.name;
        fn->call = [this, &s](const CallArgs& args) { return call_macro(s, args); };
        frames_.back()[s.name] = Value(std::move(fn));
        return Status::OK();
      }
      case Stmt::Kind::kBreak:
        *flow = Flow::kBreak;
        return Status::OK();
      case Stmt::Kind::kContinue:
        *flow = Flow::kContinue;
        return Status::OK();
      case Stmt::Kind::kGroup:
        return exec(s.body, flow);
      case Stmt::Kind::kFilterBlock: {
        QUILT_ASSIGN_OR_RETURN(std::string text, capture(s.body));
        QUILT_ASSIGN_OR_RETURN(Value v, apply_filter_chain(*s.expr, Value(std::move(text))));
        return write(v.str());
      }
    }
    return Status::OK();
  }

  Result<std::string> capture(const StmtList& body) {
    std::string buffer;
    std::string* saved = out_;
    out_ = &buffer;
    Flow flow = Flow::kNormal;
    Status s = exec(body, &flow);
    out_ = saved;
    QUILT_RETURN_IF_ERROR(s);
    return buffer;
  }

  Status bind(Frame& frame, const std::vector<std::string>& names, const Value& item) {
    if (names.size() == 1) {
      frame[names[0]] = item;
      return Status::OK();
    }
    QUILT_ASSIGN_OR_RETURN(ValueList parts, iterate(item));
    if (parts.size() != names.size()) {
      return type_error("cannot unpack " + std::to_string(parts.size()) + " values into " +
                        std::to_string(names.size()) + " names");
    }
    for (size_t i = 0; i < names.size(); ++i) frame[names[i]] = parts[i];
    return Status::OK();
  }

  Status assign(const Stmt& s, Value v) {
    if (!s.attr.empty()) {
      Value target = lookup(s.names[0]);
      if (!target.is_dict() || target.as_dict().flavor != ValueMap::Flavor::kNamespace) {
        return type_error("cannot assign attribute on non-namespace object '" + s.names[0] + "'");
      }
      target.dict_ptr()->set(s.attr, std::move(v));
      return Status::OK();
    }
    return bind(frames_.back(), s.names, v);
  }

  Status exec_for(const Stmt& s) {
    QUILT_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr));
    if (iterable.is_none()) return type_error("'NoneType' object is not iterable");
    QUILT_ASSIGN_OR_RETURN(ValueList items, iterate(iterable));
    if (s.cond) {
      ValueList kept;
      for (Value& item : items) {
        frames_.emplace_back();
        Status st = bind(frames_.back(), s.names, item);
        Result<Value> keep = st.ok() ? eval(*s.cond) : Result<Value>(st);
        frames_.pop_back();
        if (!keep.ok()) return keep.status();
        if (keep->truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    Flow flow = Flow::kNormal;
    if (items.empty()) return exec(s.else_body, &flow);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      if (++steps_ > kMaxSteps) return type_error("template ran too long");
      frames_.emplace_back();
      auto loop = std::make_shared<ValueMap>();
      loop->flavor = ValueMap::Flavor::kLoop;
      loop->entries = {{"index", Value(i + 1)},
                       {"index0", Value(i)},
                       {"revindex", Value(n - i)},
                       {"revindex0", Value(n - i - 1)},
                       {"first", Value(i == 0)},
                       {"last", Value(i == n - 1)},
                       {"length", Value(n)},
                       {"depth", Value(1)},
                       {"depth0", Value(0)},
                       {"previtem", i > 0 ? items[i - 1] : Value()},
                       {"nextitem", i + 1 < n ? items[i + 1] : Value()}};
      frames_.back()["loop"] = Value(std::move(loop));
      Status st = bind(frames_.back(), s.names, items[i]);
      flow = Flow::kNormal;
      if (st.ok()) st = exec(s.body, &flow);
      frames_.pop_back();
      QUILT_RETURN_IF_ERROR(st);
      if (flow == Flow::kBreak) break;
    }
    return Status::OK();
  }

  Result<Value> call_macro(const Stmt& macro, const CallArgs& args) {
    if (call_depth_ >= kMaxCallDepth) return type_error("macro recursion too deep");
    if (args.positional.size() > macro.names.size()) {
      return type_error("macro '" + macro.name + "' takes at most " +
                        std::to_string(macro.names.size()) + " arguments");
    }
    for (const auto& [k, v] : args.named) {
      if (std::find(macro.names.begin(), macro.names.end(), k) == macro.names.end()) {
        return type_error("macro '" + macro.name + "' has no parameter '" + k + "'");
      }
    }
    // A macro sees its parameters and the template's top-level names, not the caller's locals.
    const size_t saved_base = base_;
    frames_.emplace_back();
    base_ = frames_.size() - 1;
    ++call_depth_;
    Status st;
    for (size_t i = 0; i < macro.names.size() && st.ok(); ++i) {
      const Value* given = find_arg(args, i, macro.names[i]);
      if (given != nullptr) {
        frames_.back()[macro.names[i]] = *given;
      } else if (macro.defaults[i]) {
        Result<Value> d = eval(*macro.defaults[i]);
        if (d.ok()) {
          frames_.back()[macro.names[i]] = std::move(d).value();
        } else {
          st = d.status();
        }
      } else {
        frames_.back()[macro.names[i]] = Value();
      }
    }
    Result<std::string> text = st.ok() ? capture(macro.body) : Result<std::string>(st);
    --call_depth_;
    frames_.pop_back();
    base_ = saved_base;
    if (!text.ok()) return text.status();
    return Value(std::move(text).value());
  }

  Result<CallArgs> eval_args(const Expr& e, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.args.size(); ++i) {
      QUILT_ASSIGN_OR_RETURN(Value v, eval(*e.args[i]));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      QUILT_ASSIGN_OR_RETURN(Value v, eval(*x));
      args.named.emplace_back(k, std::move(v));
    }
    return args;
  }

  Result<Value> apply_filter_chain(const Expr& f, Value input) {
    if (f.args[0]) {
      QUILT_ASSIGN_OR_RETURN(input, apply_filter_chain(*f.args[0], std::move(input)));
    }
    QUILT_ASSIGN_OR_RETURN(CallArgs args, eval_args(f, 1));
    return apply_filter(f.name, input, args);
  }

  Result<Value> eval_call(const Expr& e) {
    const Expr& callee = *e.args[0];
    Value fn;
    if (callee.kind == Expr::Kind::kGetAttr) {
      QUILT_ASSIGN_OR_RETURN(Value self, eval(*callee.args[0]));
      if (self.is_undefined())
        return type_error("'" + describe(*callee.args[0]) + "' is undefined");
      if (has_method(self, callee.name)) {
        QUILT_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
        return call_method(self, callee.name, args);
      }
      fn = get_attr(self, callee.name);
    } else {
      QUILT_ASSIGN_OR_RETURN(fn, eval(callee));
    }
    if (fn.is_undefined()) return type_error("'" + describe(callee) + "' is undefined");
    if (!fn.is_function()) return type_error("'" + describe(callee) + "' is not callable");
    QUILT_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
    Result<Value> result = fn.as_function().call(args);
    if (!result.ok() && fn.as_function().name == "raise_exception") raised_ = true;
    return result;
  }

  Result<bool> compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") {
      QUILT_ASSIGN_OR_RETURN(bool in, contains(b, a));
      return !in;
    }
    if (op == "<") return less_than(a, b);
    if (op == ">") return less_than(b, a);
    QUILT_ASSIGN_OR_RETURN(bool lt, op == "<=" ? less_than(b, a) : less_than(a, b));
    return !lt;
  }

  Result<Value> eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kList: {
        ValueList list;
        for (const ExprPtr& x : e.args) {
          QUILT_ASSIGN_OR_RETURN(Value v, eval(*x));
          list.push_back(std::move(v));
        }
        return Value(std::move(list));
      }
      case Expr::Kind::kDict: {
        ValueMap map;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          QUILT_ASSIGN_OR_RETURN(Value k, eval(*e.args[i]));
          QUILT_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1]));
          map.set(k.is_string() ? k.as_string() : k.str(), std::move(v));
        }
        return Value(std::move(map));
      }
      case Expr::Kind::kGetAttr:
      case Expr::Kind::kGetItem:
      case Expr::Kind::kSlice: {
        QUILT_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        if (obj.is_undefined()) return type_error("'" + describe(*e.args[0]) + "' is undefined");
        if (e.kind == Expr::Kind::kGetAttr) return get_attr(obj, e.name);
        Value parts[3];
        for (size_t i = 1; i < e.args.size(); ++i) {
          if (!e.args[i]) continue;
          QUILT_ASSIGN_OR_RETURN(parts[i - 1], eval(*e.args[i]));
        }
        if (e.kind == Expr::Kind::kGetItem) return get_item(obj, parts[0]);
        return get_slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::kCall:
        return eval_call(e);
      case Expr::Kind::kFilter: {
        QUILT_ASSIGN_OR_RETURN(Value input, eval(*e.args[0]));
        QUILT_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
        return apply_filter(e.name, input, args);
      }
      case Expr::Kind::kTest: {
        QUILT_ASSIGN_OR_RETURN(Value input, eval(*e.args[0]));
        QUILT_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
        QUILT_ASSIGN_OR_RETURN(bool pass, apply_test(e.name, input, args));
        return Value(pass != e.negated);
      }
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos: {
        QUILT_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        if (v.is_undefined()) return type_error("'" + describe(*e.args[0]) + "' is undefined");
        if (!v.is_number())
          return type_error("bad operand type for unary -: '" + v.type_name() + "'");
        if (e.kind == Expr::Kind::kPos) return v.is_bool() ? Value(v.to_int()) : v;
        if (v.is_float()) return Value(-v.as_float());
        if (v.to_int() == INT64_MIN) return type_error("integer overflow");
        return Value(-v.to_int());
      }
      case Expr::Kind::kNot: {
        QUILT_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        return Value(!v.truthy());
      }
      case Expr::Kind::kBinary: {
        QUILT_ASSIGN_OR_RETURN(Value a, eval(*e.args[0]));
        QUILT_ASSIGN_OR_RETURN(Value b, eval(*e.args[1]));
        if (e.name == "~") return Value(a.str() + b.str());
        if (a.is_undefined()) return type_error("'" + describe(*e.args[0]) + "' is undefined");
        if (b.is_undefined()) return type_error("'" + describe(*e.args[1]) + "' is undefined");
        return arithmetic(e.name, a, b);
      }
      case Expr::Kind::kCompare: {
        QUILT_ASSIGN_OR_RETURN(Value left, eval(*e.args[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          QUILT_ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1]));
          QUILT_ASSIGN_OR_RETURN(bool ok, compare(e.ops[i], left, right));
          if (!ok) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kAnd:
      case Expr::Kind::kOr: {
        QUILT_ASSIGN_OR_RETURN(Value a, eval(*e.args[0]));
        if (a.truthy() == (e.kind == Expr::Kind::kOr)) return a;
        return eval(*e.args[1]);
      }
      case Expr::Kind::kCond: {
        QUILT_ASSIGN_OR_RETURN(Value c, eval(*e.args[1]));
        if (c.truthy()) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value();
      }
    }
    return Value();
  }

  std::vector<Frame> frames_;  // frames_[0]: globals and top-level assignments
  size_t base_ = 0;            // first frame of the running macro (0 outside macros)
  std::string* out_ = nullptr;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  bool raised_ = false;  // the error came from raise_exception: keep its message as written
};

}  // namespace

Result<std::string> render(const Template& tmpl, ValueMap globals) {
  Interpreter interpreter(std::move(globals));
  return interpreter.run(tmpl);
}

}  // namespace quilt::engine::jinja
