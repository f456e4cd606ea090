"""Mapping CPU per record: hand-written vs expression languages vs the compiled declarations.

    python -m bench.mapping [--customers 300] [--repeat 5]

The payloads are the demo estate's, as its servers send them (JSON round trip of estate/generate.py's
data). Each candidate maps every record of each entity; the table shows µs per record (best of
`--repeat` runs; the slow interpreters run on the first records only, see the "records" column).

- hand-written: the mappings the gateway ran before declarations (kept in tests/handwritten/).
- paths (interpreted): the declaration walked per record, each field a precompiled closure
  (item lookups) and a converter: what a naive declarative engine costs.
- jmespath / jsonata / cel-rust / cel-python: the same walk, but every field's source is that
  language's compiled expression, evaluated per field (JMESPath has no arithmetic: its duration
  reads `[endEpoch, startEpoch]` and subtracts in Python).
- compiled: connectors.mapping.compile_mapping, the engine the gateway uses.

The candidates' libraries are not dependencies of the gateway; to measure them:
    pip install jmespath==1.1.0 jsonata-python==0.7.1 common-expression-language==0.10.0
(cel-python, which the engine's parser comes from, is one.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import typing
from collections.abc import Callable
from typing import Any

from bench.common import table
from connectors import mapping as engine
from connectors.mapping import RecordMapping, compile_mapping, path_steps
from tests.handwritten import billing, contact, marketing
from tests.handwritten.records import Account, Interaction, MarketingContact

# The declarations the tests prove equal to the hand-written mappings: one copy, measured here.
from tests.test_mapping import BILLING, CONTACT, MARKETING  # noqa: E402

# The one field that needs more than a path, in each language.
DURATION = {"jsonata": "$max([0, endEpoch - startEpoch])",
            "cel": "endEpoch > startEpoch ? endEpoch - startEpoch : 0"}


# --- the candidates: one field-by-field interpreter, a getter per language -----------------------

Getter = Callable[[Any], Any]


def path_getter(text: str) -> Getter:
    steps = path_steps(text)
    if len(steps) == 1:
        (key,) = steps
        return lambda raw: raw.get(key) if isinstance(key, str) else raw[key]

    def get(raw: Any) -> Any:
        for s in steps:
            raw = raw.get(s) if isinstance(s, str) else raw[s]
            if raw is None:
                return None
        return raw
    return get


def paths_factory(text: str, is_expr: bool) -> Getter:
    if is_expr:  # translated by the engine, run as a plain lambda
        code = engine.Translator("r", {}, "p").expr(engine.parse_cel(text))
        scope = dict(engine._RUNTIME)
        return eval(f"lambda r: {code}", scope)
    return path_getter(text)


def jmespath_factory(text: str, is_expr: bool) -> Getter:
    import jmespath
    if is_expr:  # no arithmetic in JMESPath: select both, subtract in Python
        both = jmespath.compile("[endEpoch, startEpoch]")
        return lambda raw: max(0, (v := both.search(raw))[0] - v[1])
    return jmespath.compile(text).search


def jsonata_factory(text: str, is_expr: bool) -> Getter:
    import jsonata
    return jsonata.Jsonata(DURATION["jsonata"] if is_expr else text).evaluate


def cel_rust_factory(text: str, is_expr: bool) -> Getter:
    import cel
    program = cel.compile(DURATION["cel"] if is_expr else text)
    known = set()

    def get(raw: Any) -> Any:
        try:
            return program.execute(raw)
        except Exception:  # noqa: BLE001 (a missing optional key: CEL errors, a declaration reads None)
            known.add(text)
            return None
    return get


def cel_python_factory(text: str, is_expr: bool) -> Getter:
    import celpy
    env = celpy.Environment()
    program = env.program(env.compile(DURATION["cel"] if is_expr else text))

    def get(raw: Any) -> Any:
        try:
            value = program.evaluate(celpy.json_to_cel(raw))
        except Exception:  # noqa: BLE001
            return None
        return None if isinstance(value, Exception) else json.loads(json.dumps(value, cls=celpy.CELJSONEncoder))
    return get


def interpret(spec: RecordMapping | str, make: Any, factory: Callable[[str, bool], Getter]) -> Callable[..., Any]:
    """Walk the declaration per record: per field, a getter (the language) then a converter."""
    import yaml
    if isinstance(spec, str):
        spec = RecordMapping.model_validate(yaml.safe_load(spec))
    hints = typing.get_type_hints(make)
    plan = []
    for name, f in spec.fields.items():
        hint, elem = engine._unwrap(hints.get(name))
        is_expr = f.expr is not None
        get = factory(f.expr or f.parent or f.from_ or name, is_expr)
        if f.type == "list" and isinstance(f.of, RecordMapping):
            sub = interpret(f.of, elem, factory)
            def conv(v: Any, raw: Any, sub: Callable[..., Any] = sub) -> Any:
                return [sub(x, raw) for x in v]
        else:
            plain = engine._evaluate(engine._Compiler({}), f.model_copy(update={"optional": False}), hint, elem,
                                     name)
            def conv(v: Any, raw: Any, plain: Callable[[Any], Any] = plain) -> Any:
                return plain(v)
        lenient = f.optional or "default" in f.model_fields_set
        default = None if f.optional else f.default
        plan.append((name, get, conv, f.parent is not None, lenient, default))

    def run(raw: Any, parent: Any = None) -> Any:
        out = {}
        for name, get, conv, on_parent, lenient, default in plan:
            v = get(parent if on_parent else raw)
            if v is None or v == "" and lenient:
                if not lenient:
                    raise KeyError(name)
                out[name] = list(default) if isinstance(default, list) else default
            else:
                out[name] = conv(v, raw)
        return make(**out)
    return run


# --- the payloads and the run ---------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    name: str
    spec: str
    make: Any
    hand: Callable[[Any], Any]  # (raw, parent) -> record
    items: list[tuple[Any, Any]]  # (raw, parent)


def cases(customers: int) -> list[Case]:
    from estate.generate import generate
    est = generate(customers=customers)
    wire = json.loads(json.dumps({"billing": list(est.billing.values()), "contact": est.contact,
                                  "marketing": list(est.marketing.values())}, default=str))
    calls = [(i, {"phoneNumber": ph}) for ph, ixs in wire["contact"].items() for i in ixs]
    return [
        Case("billing accounts (+invoices)", BILLING, Account, lambda r, p: billing.account(r),
             [(a, None) for a in wire["billing"]]),
        Case("contact interactions (epoch)", CONTACT, Interaction, lambda r, p: contact.interaction(r, p["phoneNumber"]),
             calls),
        Case("marketing contacts (+offers)", MARKETING, MarketingContact, lambda r, p: marketing.contact(r),
             [(c, None) for c in wire["marketing"]]),
    ]


def per_record_us(fn: Callable[[Any, Any], Any], items: list[tuple[Any, Any]], repeat: int,
                  budget_s: float) -> tuple[float, int]:
    """Best-of-`repeat` CPU µs per record, over the first records mapped within about `budget_s`
    (all of them for the fast candidates), looped until a run takes at least 50 ms."""
    start, n = time.perf_counter(), 0
    for raw, parent in items:  # a warm-up run, which also sizes the sample
        fn(raw, parent)
        n += 1
        if time.perf_counter() - start > budget_s:
            break
    sample = items[:n]

    def run(loops: int) -> float:
        t0 = time.process_time()
        for _ in range(loops):
            for raw, parent in sample:
                fn(raw, parent)
        return time.process_time() - t0

    loops = 1
    while run(loops) < 0.05:
        loops *= 2
    return min(run(loops) for _ in range(repeat)) / loops / n * 1e6, n


CANDIDATES: list[tuple[str, Callable[[str, bool], Getter] | None]] = [
    ("paths (interpreted)", paths_factory), ("jmespath", jmespath_factory), ("jsonata", jsonata_factory),
    ("cel-rust", cel_rust_factory), ("cel-python", cel_python_factory),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for case in cases(args.customers):
        compiled = compile_mapping(case.spec, case.make)
        for raw, parent in case.items:  # the declarations reproduce the hand-written output exactly
            assert compiled(raw, parent) == case.hand(raw, parent), case.name
        hand_us, n = per_record_us(case.hand, case.items, args.repeat, 10.0)
        comp_us, _ = per_record_us(compiled, case.items, args.repeat, 10.0)
        row: list[Any] = [case.name, n, hand_us, comp_us, f"{(comp_us / hand_us - 1) * 100:+.0f}%"]
        for _label, factory in CANDIDATES:
            assert factory is not None
            try:
                fn = interpret(case.spec, case.make, factory)
            except ImportError:
                row.append("not installed")
                continue
            raw, parent = case.items[0]
            assert fn(raw, parent) == case.hand(raw, parent), (case.name, _label)
            us, m = per_record_us(fn, case.items, min(args.repeat, 3), 0.3)
            row.append(us if m == n else f"{us:,.0f} ({m})")
        rows.append(row)
    header = ["µs per record", "records", "hand-written", "compiled", "vs hand", *(c for c, _ in CANDIDATES)]
    print(table("Mapping CPU per record (µs; slow interpreters on the first (n) records)", header, rows))


if __name__ == "__main__":
    main()
