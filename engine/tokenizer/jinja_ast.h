// Syntax tree of a parsed chat template; immutable once parsed, shared between renders.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/jinja_value.h"

namespace quilt::engine::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // args: the elements (tuples are lists too)
    kDict,     // args: key0, value0, key1, value1, ...
    kGetAttr,  // args[0].name
    kGetItem,  // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]], absent parts are null
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs); args[0] is null in {% filter %} blocks
    kTest,     // args[0] is [not] name(args[1..])
    kNeg,      // -args[0]
    kPos,      // +args[0]
    kNot,      // not args[0]
    kBinary,   // args[0] name args[1], name one of + - * / // % ** ~
    kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (chained like Python)
    kAnd,      // args[0] and args[1]
    kOr,       // args[0] or args[1]
    kCond,     // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;  // kCompare: == != < <= > >= in "not in"
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;  // kTest: "is not"
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches (cond, body), then else_body
    kFor,       // for names in expr [if cond]: body, else_body
    kSet,       // set names = expr, or set names[0].attr = expr
    kSetBlock,  // set names[0] (or names[0].attr) to the rendered body
    kMacro,     // macro name(names with defaults): body
    kBreak,
    kContinue,
    kGroup,        // body rendered in place ({% generation %})
    kFilterBlock,  // body rendered, then passed through the kFilter expr
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::string name;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::string> names;
  std::string attr;
  std::vector<ExprPtr> defaults;  // kMacro: one per parameter, null when none
  std::vector<std::pair<ExprPtr, StmtList>> branches;
  StmtList body, else_body;
};

struct Template {
  StmtList body;
};

}  // namespace quilt::engine::jinja
