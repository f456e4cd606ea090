"""CEL (https://cel.dev), parsed once with cel-python's parser and translated to Python source.

Two uses, one translator:
- mappings (connectors/mapping.py): expressions over a source's raw record (dicts and lists), where
  an identifier is a key of the record;
- record expressions (`compile_record_expr`, `compile_template`): conditions, selections and summary
  templates over our own records (the declared types), where an identifier is a field of the record,
  checked when compiled. An enum field compared with a string literal (`status == 'OPEN'`, `status in
  ['NEW', 'OPEN']`) compares members, converted once at compile time (an unknown name is an error);
  string functions read an enum as its name.

The CEL subset translated: literals, lists and maps; field selection and indexing; `+ - * / %`
(integer `/` and `%` truncate, as in CEL); comparisons and `in`; `&& || !`; `c ? a : b`; `has(a.b)`;
`size`, `int`, `uint`, `double`, `string`, `bool`, `max`, `min`, `math.greatest`, `math.least`,
`math.round` (half away from zero, as cel-go's math extension); the string methods `startsWith
endsWith contains matches lowerAscii upperAscii trim split join replace size`; the macros `map filter
all exists exists_one`. Record expressions add a few host functions (CEL lets a host declare its own):
`sum(list)`, `rank(enum_field)` (the member's position in its declared enum), `money(amount, currency)`
("EUR 1,234.50"), `day(timestamp)` ("2026-11-23"), `capitalize(s)`, `days(n)`. Anything else is refused when
compiled. Deviations from CEL's spec: arithmetic does not check for overflow, and mixed int/double
arithmetic is allowed (CEL refuses it).
"""

from __future__ import annotations

import ast as pyast
import re
from functools import cache, lru_cache
from typing import Any

# --- CEL: parse once, translate to Python ---------------------------------------------------------

@cache
def _parser() -> Any:
    from celpy.celparser import CELParser  # lark grammar: built once, and only when a mapping is compiled
    return CELParser()


@lru_cache(maxsize=4096)
def parse_cel(text: str) -> Any:
    from celpy.celparser import CELParseError
    try:
        return _parser().parse(text)
    except CELParseError as exc:
        raise ValueError(f"not valid CEL: {str(exc).splitlines()[0]}") from None


def path_steps(text: str) -> list[str | int]:
    """The steps of a CEL selection path (`a.b[0]["c d"]`), or ValueError if it is more than that."""
    tree = parse_cel(text)
    node = _only(tree, ("expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                        "unary"))
    if node is None or node.data != "member":
        raise ValueError(f"{text!r} is not a path (use expr: for an expression)")
    steps: list[str | int] = []
    while True:
        child = node.children[0]
        if child.data == "member_dot":
            steps.append(str(child.children[1]))
            node = child.children[0]
        elif child.data == "member_index":
            lit = _only(child.children[1], ("expr", "conditionalor", "conditionaland", "relation", "addition",
                                            "multiplication", "unary", "member", "primary"))
            if lit is None or lit.data != "literal":
                raise ValueError(f"{text!r}: a path's index must be a literal")
            value = _literal(str(lit.children[0]))
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ValueError(f"{text!r}: a path's index must be a string or an int")
            steps.append(value)
            node = child.children[0]
        elif child.data == "primary" and child.children[0].data == "ident":
            steps.append(str(child.children[0].children[0]))
            return steps[::-1]
        else:
            raise ValueError(f"{text!r} is not a path (use expr: for an expression)")


def _only(node: Any, chain: tuple[str, ...]) -> Any:
    """Descend through single-child wrapper nodes named in `chain`."""
    while getattr(node, "data", None) in chain:
        kids = [c for c in node.children if c is not None]
        if len(kids) != 1 or not hasattr(kids[0], "data"):
            return node if node.data not in chain[:-1] or len(kids) != 1 else None
        node = kids[0]
    return node


def _literal(token: str) -> Any:
    if token in ("true", "false"):
        return token == "true"
    if token == "null":
        return None
    if token[:1] in "bB" and token[1:2] in "\"'":
        raise ValueError("CEL bytes literals are not supported by the mapping compiler")
    if token[-1:] in "uU" and token[:1] not in "\"'rR":
        token = token[:-1]
    return pyast.literal_eval(token)


_BINARY = {"addition_add": "+", "addition_sub": "-", "multiplication_mul": "*",
           "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
           "relation_eq": "==", "relation_ne": "!=", "relation_in": "in"}
_HELPER_BINARY = {"multiplication_div": "_cel_div", "multiplication_mod": "_cel_mod"}
_FUNCS = {"size": "len", "int": "int", "uint": "int", "double": "float", "string": "_cel_string",
          "bool": "_cel_bool", "max": "max", "min": "min"}
_METHODS = {"startsWith": "({0}).startswith({1})", "endsWith": "({0}).endswith({1})",
            "contains": "(({1}) in ({0}))", "matches": "_cel_matches({0}, {1})", "lowerAscii": "({0}).lower()",
            "upperAscii": "({0}).upper()", "trim": "({0}).strip()", "split": "({0}).split({1})",
            "join": "({1}).join({0})", "replace": "({0}).replace({1}, {2})", "size": "len({0})"}
_MACROS = ("map", "filter", "all", "exists", "exists_one")


class Translator:
    """CEL (cel-python's parse tree) -> one Python expression. Identifiers are the fields of the
    record in variable `record`; macros bind their variable as a Python name."""

    def __init__(self, record: str, scope: dict[str, str], parent: str) -> None:
        self.record, self.scope, self.parent = record, scope, parent

    def expr(self, node: Any) -> str:
        kind = node.data
        kids = node.children
        if kind == "expr":
            if len(kids) == 1 or kids[1] is None:
                return self.expr(kids[0])
            return f"(({self.expr(kids[1])}) if ({self.expr(kids[0])}) else ({self.expr(kids[2])}))"
        if kind in ("conditionalor", "conditionaland"):
            if len(kids) == 1 or kids[0] is None:
                return self.expr(kids[-1])
            op = " or " if kind == "conditionalor" else " and "
            return f"(({self.expr(kids[0])}){op}({self.expr(kids[1])}))"
        if kind in ("relation", "addition", "multiplication"):
            if len(kids) == 1:
                return self.expr(kids[0])
            op_node, right = kids
            left = self.expr(op_node.children[0])
            if op_node.data in _HELPER_BINARY:
                return f"{_HELPER_BINARY[op_node.data]}({left}, {self.expr(right)})"
            return f"(({left}) {_BINARY[op_node.data]} ({self.expr(right)}))"
        if kind == "unary":
            if len(kids) == 1:
                return self.expr(kids[0])
            op = "not " if kids[0].data == "unary_not" else "-"
            return f"({op}({self.expr(kids[1])}))"
        if kind == "member":
            return self.expr(kids[0])
        if kind == "member_dot":
            return f"({self.expr(kids[0])})[{str(kids[1])!r}]"
        if kind == "member_index":
            return f"({self.expr(kids[0])})[{self.expr(kids[1])}]"
        if kind == "member_dot_arg":
            return self.method(kids[0], str(kids[1]), self.args(kids[2] if len(kids) > 2 else None))
        if kind == "primary":
            return self.expr(kids[0])
        if kind == "ident":
            name = str(kids[0])
            return self.scope.get(name) or f"{self.record}[{name!r}]"
        if kind == "ident_arg":
            return self.call(str(kids[0]), self.args(kids[1] if len(kids) > 1 else None))
        if kind == "paren_expr":
            return f"({self.expr(kids[0])})"
        if kind == "literal":
            return repr(_literal(str(kids[0])))
        if kind == "list_lit":
            return "[" + ", ".join(self.expr(a) for a in self.args(kids[0] if kids else None)) + "]"
        if kind == "map_lit":
            inits = kids[0].children if kids and kids[0] is not None else []
            pairs = [f"{self.expr(k)}: {self.expr(v)}" for k, v in zip(inits[::2], inits[1::2])]
            return "{" + ", ".join(pairs) + "}"
        raise ValueError(f"CEL {kind.replace('_', ' ')} is not supported by the mapping compiler")

    @staticmethod
    def args(node: Any) -> list[Any]:
        return [] if node is None else list(node.children)

    def call(self, name: str, args: list[Any]) -> str:
        if name == "has":
            sel = _only(args[0], ("expr", "conditionalor", "conditionaland", "relation", "addition",
                                  "multiplication", "unary", "member")) if len(args) == 1 else None
            if sel is None or sel.data != "member_dot":
                raise ValueError("has() takes one field selection, e.g. has(a.b)")
            return f"({str(sel.children[1])!r} in ({self.expr(sel.children[0])}))"
        if name not in _FUNCS:
            raise ValueError(f"CEL function {name}() is not supported by the mapping compiler")
        return f"{_FUNCS[name]}({', '.join(self.expr(a) for a in args)})"

    def method(self, target: Any, name: str, args: list[Any]) -> str:
        if name in _MACROS:
            return self.macro(target, name, args)
        head = _only(target, ("member", "primary"))
        if getattr(head, "data", None) == "ident" and str(head.children[0]) == "math" and "math" not in self.scope:
            if name in ("greatest", "least"):
                return f"{'max' if name == 'greatest' else 'min'}({', '.join(self.expr(a) for a in args)})"
            raise ValueError(f"CEL function math.{name}() is not supported by the mapping compiler")
        if name not in _METHODS:
            raise ValueError(f"CEL method .{name}() is not supported by the mapping compiler")
        if name == "join" and not args:
            return f"''.join({self.expr(target)})"
        if name == "split" and len(args) == 2:  # CEL's strings extension: at most n parts
            return f"_cel_split({self.expr(target)}, {self.expr(args[0])}, {self.expr(args[1])})"
        return _METHODS[name].format(self.expr(target), *(self.expr(a) for a in args))

    def macro(self, target: Any, name: str, args: list[Any]) -> str:
        var = _only(args[0], ("expr", "conditionalor", "conditionaland", "relation", "addition",
                              "multiplication", "unary", "member", "primary")) if args else None
        if var is None or var.data != "ident" or len(args) not in (2, 3) or (len(args) == 3 and name != "map"):
            raise ValueError(f".{name}() takes a variable and an expression")
        py = f"_m{len(self.scope)}_{var.children[0]}"
        inner = self.inner(str(var.children[0]), py, target)
        seq = self.expr(target)
        body = inner.expr(args[-1])
        if name == "map":
            cond = f" if ({inner.expr(args[1])})" if len(args) == 3 else ""
            return f"[{body} for {py} in {seq}{cond}]"
        if name == "filter":
            return f"[{py} for {py} in {seq} if ({body})]"
        if name == "exists_one":
            return f"(sum(1 for {py} in {seq} if ({body})) == 1)"
        return f"{name if name == 'all' else 'any'}(({body}) for {py} in {seq})"

    def inner(self, var: str, py: str, target: Any) -> Translator:
        """The translator of a macro's body: `var` (the CEL name) bound to the Python name `py`."""
        return Translator(self.record, {**self.scope, var: py}, self.parent)


def _cel_div(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)  # ZeroDivisionError is an ArithmeticError; CEL errors too
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _cel_mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return a - _cel_div(a, b) * b
    raise TypeError("CEL % takes ints")


def _cel_split(s: str, sep: str, n: int) -> list[str]:
    return [] if n == 0 else s.split(sep, n - 1 if n > 0 else -1)


def _cel_string(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _cel_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v in ("true", "True", "TRUE", "t", "1"):
        return True
    if v in ("false", "False", "FALSE", "f", "0"):
        return False
    raise ValueError(f"not a bool: {v!r}")


def _cel_matches(s: str, pattern: str) -> bool:
    return re.search(pattern, s) is not None


