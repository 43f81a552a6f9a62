// Recursive-descent parser with Jinja2's grammar and operator precedence.
#include "engine/tokenizer/jinja_parser.h"

#include <charconv>
#include <cstdlib>
#include <initializer_list>

#include "engine/tokenizer/jinja_lexer.h"

namespace quilt::engine::jinja {
namespace {

// Deeper nesting than this is refused so that hostile templates cannot overflow the stack.
constexpr int kMaxDepth = 100;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::shared_ptr<const Template>> run() {
    auto tmpl = std::make_shared<Template>();
    std::string end_tag;
    QUILT_ASSIGN_OR_RETURN(tmpl->body, parse_body({}, &end_tag, 0));
    return std::shared_ptr<const Template>(std::move(tmpl));
  }

 private:
  // ---- token helpers ----
  const Token& peek(size_t ahead = 0) const {
    const size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  bool at_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::kOperator && peek(ahead).value == op;
  }
  bool at_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::kName && peek(ahead).value == name;
  }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kText:
        return "template text";
      case TokenType::kVarBegin:
        return "'{{'";
      case TokenType::kVarEnd:
        return "'}}'";
      case TokenType::kBlockBegin:
        return "'{%'";
      case TokenType::kBlockEnd:
        return "'%}'";
      case TokenType::kEnd:
        return "end of template";
      case TokenType::kString:
        return "string";
      default:
        return "'" + t.value + "'";
    }
  }
  Status error(const std::string& what) const { return error_at(peek().line, what); }
  static Status error_at(int line, const std::string& what) {
    return Status::InvalidArgument("template line " + std::to_string(line) + ": " + what);
  }
  Status expect_op(std::string_view op) {
    if (!at_op(op)) return error("expected '" + std::string(op) + "', got " + describe(peek()));
    next();
    return Status::OK();
  }
  Status expect(TokenType type, const char* what) {
    if (peek().type != type)
      return error(std::string("expected ") + what + ", got " + describe(peek()));
    next();
    return Status::OK();
  }
  Result<std::string> expect_name() {
    if (peek().type != TokenType::kName) return error("expected a name, got " + describe(peek()));
    return next().value;
  }
  static ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Parses statements until a block tag named in `ends`; consumes "{% name" of that tag.
  Result<StmtList> parse_body(std::initializer_list<std::string_view> ends, std::string* which,
                              int depth) {
    if (depth > kMaxDepth) return error("blocks nested too deeply");
    const int open_line = peek().line;
    StmtList body;
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::kEnd) {
        if (ends.size() == 0) return body;
        return error_at(open_line, "unexpected end of template: missing {% " +
                                       std::string(*(ends.end() - 1)) + " %}");
      }
      if (t.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->text = next().value;
        body.push_back(std::move(s));
        continue;
      }
      if (t.type == TokenType::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = next().line;
        QUILT_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, 0));
        QUILT_RETURN_IF_ERROR(expect(TokenType::kVarEnd, "'}}'"));
        body.push_back(std::move(s));
        continue;
      }
      if (t.type != TokenType::kBlockBegin) return error("unexpected " + describe(t));
      if (peek(1).type == TokenType::kName) {
        for (std::string_view end : ends) {
          if (peek(1).value == end) {
            next();
            *which = next().value;
            return body;
          }
        }
      }
      next();
      QUILT_ASSIGN_OR_RETURN(StmtPtr stmt, parse_block(depth));
      body.push_back(std::move(stmt));
    }
  }

  Result<StmtPtr> parse_block(int depth) {
    const int line = peek().line;
    QUILT_ASSIGN_OR_RETURN(std::string tag, expect_name());
    auto s = std::make_unique<Stmt>();
    s->line = line;
    std::string which;
    if (tag == "if") {
      s->kind = Stmt::Kind::kIf;
      std::string kw = "if";
      while (kw == "if" || kw == "elif") {
        QUILT_ASSIGN_OR_RETURN(ExprPtr cond, parse_expression(0));
        QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
        QUILT_ASSIGN_OR_RETURN(StmtList body,
                               parse_body({"elif", "else", "endif"}, &kw, depth + 1));
        s->branches.emplace_back(std::move(cond), std::move(body));
      }
      if (kw == "else") {
        QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
        QUILT_ASSIGN_OR_RETURN(s->else_body, parse_body({"endif"}, &kw, depth + 1));
      }
    } else if (tag == "for") {
      s->kind = Stmt::Kind::kFor;
      QUILT_RETURN_IF_ERROR(parse_targets(&s->names));
      if (!at_name("in")) return error("expected 'in', got " + describe(peek()));
      next();
      QUILT_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, 0));
      if (at_name("if")) {
        next();
        QUILT_ASSIGN_OR_RETURN(s->cond, parse_expression(0));
      }
      if (at_name("recursive")) return error("recursive loops are not supported");
      QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
      QUILT_ASSIGN_OR_RETURN(s->body, parse_body({"else", "endfor"}, &which, depth + 1));
      if (which == "else") {
        QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
        QUILT_ASSIGN_OR_RETURN(s->else_body, parse_body({"endfor"}, &which, depth + 1));
      }
    } else if (tag == "set") {
      QUILT_ASSIGN_OR_RETURN(std::string target, expect_name());
      s->names.push_back(target);
      if (at_op(".")) {
        next();
        QUILT_ASSIGN_OR_RETURN(s->attr, expect_name());
      } else {
        while (at_op(",")) {
          next();
          QUILT_ASSIGN_OR_RETURN(std::string more, expect_name());
          s->names.push_back(more);
        }
      }
      if (at_op("=")) {
        next();
        s->kind = Stmt::Kind::kSet;
        QUILT_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, 0));
      } else {
        if (s->names.size() != 1) return error("a {% set %} block takes one name");
        s->kind = Stmt::Kind::kSetBlock;
        QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
        QUILT_ASSIGN_OR_RETURN(s->body, parse_body({"endset"}, &which, depth + 1));
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::kMacro;
      QUILT_ASSIGN_OR_RETURN(s->name, expect_name());
      QUILT_RETURN_IF_ERROR(expect_op("("));
      while (!at_op(")")) {
        QUILT_ASSIGN_OR_RETURN(std::string param, expect_name());
        s->names.push_back(param);
        ExprPtr fallback;
        if (at_op("=")) {
          next();
          QUILT_ASSIGN_OR_RETURN(fallback, parse_expression(0));
        }
        s->defaults.push_back(std::move(fallback));
        if (!at_op(",")) break;
        next();
      }
      QUILT_RETURN_IF_ERROR(expect_op(")"));
      QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
      QUILT_ASSIGN_OR_RETURN(s->body, parse_body({"endmacro"}, &which, depth + 1));
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
    } else if (tag == "generation") {
      s->kind = Stmt::Kind::kGroup;
      QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
      QUILT_ASSIGN_OR_RETURN(s->body, parse_body({"endgeneration"}, &which, depth + 1));
    } else if (tag == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      QUILT_ASSIGN_OR_RETURN(s->expr, parse_filter(nullptr, 0));
      while (at_op("|")) {
        QUILT_ASSIGN_OR_RETURN(s->expr, parse_filter(std::move(s->expr), 0));
      }
      QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
      QUILT_ASSIGN_OR_RETURN(s->body, parse_body({"endfilter"}, &which, depth + 1));
    } else {
      return error_at(line, "unknown or unexpected tag '" + tag + "'");
    }
    QUILT_RETURN_IF_ERROR(expect(TokenType::kBlockEnd, "'%}'"));
    return s;
  }

  Status parse_targets(std::vector<std::string>* names) {
    const bool paren = at_op("(");
    if (paren) next();
    while (true) {
      QUILT_ASSIGN_OR_RETURN(std::string name, expect_name());
      names->push_back(name);
      if (!at_op(",")) break;
      next();
    }
    if (paren) QUILT_RETURN_IF_ERROR(expect_op(")"));
    return Status::OK();
  }

  // ---- expressions ----

  // An expression, or a tuple (a list) when commas follow.
  Result<ExprPtr> parse_tuple(bool with_condexpr, int depth) {
    const int line = peek().line;
    QUILT_ASSIGN_OR_RETURN(ExprPtr first,
                           with_condexpr ? parse_expression(depth) : parse_or(depth));
    if (!at_op(",")) return first;
    ExprPtr list = make(Expr::Kind::kList, line);
    list->args.push_back(std::move(first));
    while (at_op(",")) {
      next();
      if (peek().type == TokenType::kVarEnd || peek().type == TokenType::kBlockEnd || at_op(")")) {
        break;
      }
      QUILT_ASSIGN_OR_RETURN(ExprPtr more,
                             with_condexpr ? parse_expression(depth) : parse_or(depth));
      list->args.push_back(std::move(more));
    }
    return list;
  }

  Result<ExprPtr> parse_expression(int depth) {
    if (depth > kMaxDepth) return error("expression nested too deeply");
    QUILT_ASSIGN_OR_RETURN(ExprPtr expr, parse_or(depth + 1));
    while (at_name("if")) {
      const int line = next().line;
      ExprPtr cond_expr = make(Expr::Kind::kCond, line);
      QUILT_ASSIGN_OR_RETURN(ExprPtr cond, parse_or(depth + 1));
      ExprPtr otherwise;
      if (at_name("else")) {
        next();
        QUILT_ASSIGN_OR_RETURN(otherwise, parse_expression(depth + 1));
      }
      cond_expr->args.push_back(std::move(expr));
      cond_expr->args.push_back(std::move(cond));
      cond_expr->args.push_back(std::move(otherwise));
      expr = std::move(cond_expr);
    }
    return expr;
  }

  static ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr left, ExprPtr right, int line) {
    ExprPtr e = make(kind, line);
    e->name = std::move(op);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  Result<ExprPtr> parse_or(int depth) {
    QUILT_ASSIGN_OR_RETURN(ExprPtr left, parse_and(depth));
    while (at_name("or")) {
      const int line = next().line;
      QUILT_ASSIGN_OR_RETURN(ExprPtr right, parse_and(depth));
      left = binary(Expr::Kind::kOr, "or", std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> parse_and(int depth) {
    QUILT_ASSIGN_OR_RETURN(ExprPtr left, parse_not(depth));
    while (at_name("and")) {
      const int line = next().line;
      QUILT_ASSIGN_OR_RETURN(ExprPtr right, parse_not(depth));
      left = binary(Expr::Kind::kAnd, "and", std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> parse_not(int depth) {
    if (depth > kMaxDepth) return error("expression nested too deeply");
    if (at_name("not")) {
      const int line = next().line;
      QUILT_ASSIGN_OR_RETURN(ExprPtr operand, parse_not(depth + 1));
      ExprPtr e = make(Expr::Kind::kNot, line);
      e->args.push_back(std::move(operand));
      return e;
    }
    return parse_compare(depth);
  }

  Result<ExprPtr> parse_compare(int depth) {
    const int line = peek().line;
    QUILT_ASSIGN_OR_RETURN(ExprPtr first, parse_math1(depth));
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (peek().type == TokenType::kOperator &&
          (peek().value == "==" || peek().value == "!=" || peek().value == "<" ||
           peek().value == "<=" || peek().value == ">" || peek().value == ">=")) {
        op = next().value;
      } else if (at_name("in")) {
        next();
        op = "in";
      } else if (at_name("not") && at_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, line);
        cmp->args.push_back(std::move(first));
      }
      QUILT_ASSIGN_OR_RETURN(ExprPtr operand, parse_math1(depth));
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(operand));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  // Left-associative binary levels, loosest first.
  Result<ExprPtr> parse_level(int level, int depth) {
    static const std::vector<std::vector<std::string_view>> kLevels = {
        {"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
    if (level == static_cast<int>(kLevels.size())) return parse_unary(true, depth);
    QUILT_ASSIGN_OR_RETURN(ExprPtr left, parse_level(level + 1, depth));
    while (true) {
      bool matched = false;
      for (std::string_view op : kLevels[level]) matched = matched || at_op(op);
      if (!matched) return left;
      const Token& op = next();
      QUILT_ASSIGN_OR_RETURN(ExprPtr right, parse_level(level + 1, depth));
      left = binary(Expr::Kind::kBinary, op.value, std::move(left), std::move(right), op.line);
    }
  }
  Result<ExprPtr> parse_math1(int depth) { return parse_level(0, depth); }

  Result<ExprPtr> parse_unary(bool with_filter, int depth) {
    if (depth > kMaxDepth) return error("expression nested too deeply");
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      const Token& op = next();
      QUILT_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false, depth + 1));
      node = make(op.value == "-" ? Expr::Kind::kNeg : Expr::Kind::kPos, op.line);
      node->args.push_back(std::move(operand));
    } else {
      QUILT_ASSIGN_OR_RETURN(node, parse_primary(depth + 1));
    }
    QUILT_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node), depth + 1));
    if (!with_filter) return node;
    while (true) {
      if (at_op("|")) {
        QUILT_ASSIGN_OR_RETURN(node, parse_filter(std::move(node), depth + 1));
      } else if (at_name("is")) {
        QUILT_ASSIGN_OR_RETURN(node, parse_test(std::move(node), depth + 1));
      } else if (at_op("(")) {
        QUILT_ASSIGN_OR_RETURN(node, parse_call(std::move(node), depth + 1));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_primary(int depth) {
    const Token& t = peek();
    const int line = t.line;
    if (t.type == TokenType::kName) {
      next();
      ExprPtr e = make(Expr::Kind::kLiteral, line);
      if (t.value == "true" || t.value == "True") {
        e->literal = Value(true);
      } else if (t.value == "false" || t.value == "False") {
        e->literal = Value(false);
      } else if (t.value == "none" || t.value == "None") {
        e->literal = Value::none();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = t.value;
      }
      return e;
    }
    if (t.type == TokenType::kString) {
      std::string s;
      while (peek().type == TokenType::kString) s += next().value;  // adjacent literals join
      ExprPtr e = make(Expr::Kind::kLiteral, line);
      e->literal = Value(std::move(s));
      return e;
    }
    if (t.type == TokenType::kInt) {
      next();
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(t.value.data(), t.value.data() + t.value.size(), v);
      ExprPtr e = make(Expr::Kind::kLiteral, line);
      e->literal = ec == std::errc() ? Value(v) : Value(std::strtod(t.value.c_str(), nullptr));
      return e;
    }
    if (t.type == TokenType::kFloat) {
      next();
      ExprPtr e = make(Expr::Kind::kLiteral, line);
      e->literal = Value(std::strtod(t.value.c_str(), nullptr));
      return e;
    }
    if (at_op("(")) {
      next();
      if (at_op(")")) {
        next();
        return make(Expr::Kind::kList, line);
      }
      QUILT_ASSIGN_OR_RETURN(ExprPtr inner, parse_tuple(true, depth + 1));
      QUILT_RETURN_IF_ERROR(expect_op(")"));
      return inner;
    }
    if (at_op("[")) {
      next();
      ExprPtr list = make(Expr::Kind::kList, line);
      while (!at_op("]")) {
        QUILT_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(depth + 1));
        list->args.push_back(std::move(item));
        if (!at_op(",")) break;
        next();
      }
      QUILT_RETURN_IF_ERROR(expect_op("]"));
      return list;
    }
    if (at_op("{")) {
      next();
      ExprPtr dict = make(Expr::Kind::kDict, line);
      while (!at_op("}")) {
        QUILT_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(depth + 1));
        QUILT_RETURN_IF_ERROR(expect_op(":"));
        QUILT_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(depth + 1));
        dict->args.push_back(std::move(key));
        dict->args.push_back(std::move(value));
        if (!at_op(",")) break;
        next();
      }
      QUILT_RETURN_IF_ERROR(expect_op("}"));
      return dict;
    }
    return error("unexpected " + describe(t));
  }

  Result<ExprPtr> parse_postfix(ExprPtr node, int depth) {
    while (true) {
      const int line = peek().line;
      if (at_op(".")) {
        next();
        if (peek().type == TokenType::kInt) {
          ExprPtr item = make(Expr::Kind::kGetItem, line);
          ExprPtr index = make(Expr::Kind::kLiteral, line);
          index->literal = Value(static_cast<int64_t>(std::atoll(next().value.c_str())));
          item->args.push_back(std::move(node));
          item->args.push_back(std::move(index));
          node = std::move(item);
          continue;
        }
        ExprPtr attr = make(Expr::Kind::kGetAttr, line);
        QUILT_ASSIGN_OR_RETURN(attr->name, expect_name());
        attr->args.push_back(std::move(node));
        node = std::move(attr);
      } else if (at_op("[")) {
        next();
        QUILT_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node), line, depth));
      } else if (at_op("(")) {
        QUILT_ASSIGN_OR_RETURN(node, parse_call(std::move(node), depth));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr target, int line, int depth) {
    ExprPtr parts[3];
    int part = 0;
    bool is_slice = false;
    while (!at_op("]")) {
      if (at_op(":")) {
        next();
        is_slice = true;
        if (++part > 2) return error("too many ':' in slice");
        continue;
      }
      if (parts[part]) return error("expected ':' or ']', got " + describe(peek()));
      QUILT_ASSIGN_OR_RETURN(parts[part], parse_expression(depth + 1));
    }
    QUILT_RETURN_IF_ERROR(expect_op("]"));
    ExprPtr e = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, line);
    e->args.push_back(std::move(target));
    if (!is_slice) {
      if (!parts[0]) return error_at(line, "empty subscript");
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    for (ExprPtr& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  Status parse_call_args(Expr* e, int depth) {
    QUILT_RETURN_IF_ERROR(expect_op("("));
    while (!at_op(")")) {
      if (peek().type == TokenType::kName && at_op("=", 1)) {
        std::string key = next().value;
        next();
        QUILT_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(depth + 1));
        e->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e->kwargs.empty()) return error("positional argument after keyword argument");
        QUILT_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(depth + 1));
        e->args.push_back(std::move(value));
      }
      if (!at_op(",")) break;
      next();
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_call(ExprPtr callee, int depth) {
    ExprPtr call = make(Expr::Kind::kCall, peek().line);
    call->args.push_back(std::move(callee));
    QUILT_RETURN_IF_ERROR(parse_call_args(call.get(), depth));
    return call;
  }

  // `input | name(args)`; input is null for {% filter %} blocks.
  Result<ExprPtr> parse_filter(ExprPtr input, int depth) {
    if (input) QUILT_RETURN_IF_ERROR(expect_op("|"));
    ExprPtr f = make(Expr::Kind::kFilter, peek().line);
    QUILT_ASSIGN_OR_RETURN(f->name, expect_name());
    f->args.push_back(std::move(input));
    if (at_op("(")) QUILT_RETURN_IF_ERROR(parse_call_args(f.get(), depth));
    return f;
  }

  Result<ExprPtr> parse_test(ExprPtr input, int depth) {
    ExprPtr t = make(Expr::Kind::kTest, next().line);  // "is"
    if (at_name("not")) {
      next();
      t->negated = true;
    }
    QUILT_ASSIGN_OR_RETURN(t->name, expect_name());
    t->args.push_back(std::move(input));
    if (at_op("(")) {
      QUILT_RETURN_IF_ERROR(parse_call_args(t.get(), depth));
    } else {
      // `is divisibleby 3`, `is equalto 'x'`: one bare argument, as Jinja allows.
      const Token& n = peek();
      const bool starts_arg =
          n.type == TokenType::kString || n.type == TokenType::kInt ||
          n.type == TokenType::kFloat || at_op("[") || at_op("{") ||
          (n.type == TokenType::kName && n.value != "else" && n.value != "or" && n.value != "and" &&
           n.value != "if" && n.value != "in" && n.value != "not" && n.value != "is");
      if (starts_arg) {
        QUILT_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary(depth + 1));
        QUILT_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg), depth + 1));
        t->args.push_back(std::move(arg));
      }
    }
    return t;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Template>> parse_template(std::string_view source) {
  QUILT_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source));
  return Parser(std::move(tokens)).run();
}

}  // namespace quilt::engine::jinja
