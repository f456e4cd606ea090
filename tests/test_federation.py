"""The gateway as an Apollo Federation v2 subgraph (`federation: {enabled: true}`): `_service { sdl }`,
`_entities` resolved like `customers(ids:)` (batched, policed, limited), and the SDL composed with a second
subgraph by a real composer (@theguild/federation-composition, run with node: skipped when node or npm is
missing, except under CI=true, where it must run; the test installs the composer on demand)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import parse

import config as gateway_settings
from estate.generate import golden_id
from server.app import build_schema
from server.limits import Limits
from server.settings import LimitSettings
from tests.harness import LIVE, ROOT, Estate, Gateway, gateway_config, running_gateway
from tests.queries import CUSTOMERS_FULL, FULL_CUSTOMER
from tests.test_batching import BATCH_SOURCES, sql_calls

ENTITIES = FULL_CUSTOMER + "query Entities($r: [_Any!]!) { _entities(representations: $r) { ...Full } }"
SDL = "{ _service { sdl } }"
IDS = [golden_id(n) for n in range(201, 301)]
KEYED = 'type Customer @key(fields: "id") {'
# Pinned: a new composer release must not change what this test means without a commit.
COMPOSER = ("@theguild/federation-composition@0.27.0", "graphql@16.15.0")
# A second subgraph extending Customer by its key, as another team's service would.
REVIEWS = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])

type Customer @key(fields: "id") {
  id: ID!
  reviews: [Review!]!
}

type Review {
  id: ID!
  stars: Int!
  text: String!
}

type Query {
  latestReviews: [Review!]!
}
"""


def reps(ids: list[str]) -> list[dict[str, str]]:
    return [{"__typename": "Customer", "id": i} for i in ids]


def cli_sdl(*flags: str) -> str:
    done = subprocess.run([sys.executable, "gateway.py", "schema", *flags], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def subgraph(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cfg = gateway_config(estate)
    cfg["federation"] = {"enabled": True}
    cfg["roles"]["partner"] = {"read": ["*"], "mutations": [], "introspection": False}
    yield from running_gateway(cfg, tmp_path_factory.mktemp("federation"), "subgraph")


# --- in-process: the schemas and the limits ----------------------------------------------------------

def test_the_subgraph_sdl_is_the_plain_sdl_plus_federation_and_nothing_else() -> None:
    plain, sub = build_schema().as_str(), build_schema(federation=True).as_str()
    assert "@key" not in plain and "_service" not in plain and "_Any" not in plain and "@link" not in plain
    assert sub.startswith('schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"]) {')
    added = ["  _entities(representations: [_Any!]!): [_Entity]!\n  _service: _Service!\n",
             "scalar _Any", "union _Entity = Customer", "type _Service {\n  sdl: String!\n}"]
    assert all(a in sub for a in added)
    rest = sub.split("}\n\n", 1)[1].replace(KEYED, "type Customer {")
    for a in added:
        rest = rest.replace(a, "")
    assert rest.split() == plain.split()  # every other type, field and description as in the plain schema


@pytest.mark.parametrize(("section", "message"), [
    ({"enabled": "maybe"}, "federation.enabled: Input should be a valid boolean"),
    ({"enable": True}, "federation.enable: unknown key"),
])
def test_a_bad_federation_section_is_one_clear_line(section: dict[str, Any], message: str) -> None:
    raw = gateway_settings.inline(ROOT / "gateway.yaml")
    raw["federation"] = section
    with pytest.raises(gateway_settings.ConfigError, match=message):
        gateway_settings.parse(raw)


def test_limits_count_representations_as_customers() -> None:
    schema = build_schema(federation=True)._schema
    lim = Limits(LimitSettings(), max_ids=100)
    query = "query($r: [_Any!]!, $ids: [ID!]!) { customers(ids: $ids) { id } _entities(representations: $r) " \
            "{ ... on Customer { id } } }"
    assert lim.check(schema, parse(query), query, None, {"ids": IDS[:50], "r": reps(IDS[50:])}) == []
    refused = lim.check(schema, parse(query), query, None, {"ids": IDS[:60], "r": reps(IDS[:60])})
    assert refused[0].extensions["limit"] == {"name": "max_customers", "value": 100}
    literal = "{ _entities(representations: [%s]) { ... on Customer { id } } }" % ", ".join(
        f'{{__typename: "Customer", id: "{i}"}}' for i in IDS[:3])
    assert lim.shape(schema, parse(literal), literal, None).customers == 3  # type: ignore[union-attr]


# --- over HTTP, against the demo estate --------------------------------------------------------------

def test_service_sdl_is_what_schema_federation_prints(subgraph: Gateway) -> None:
    sdl = subgraph.gql(SDL)["data"]["_service"]["sdl"]
    assert KEYED in sdl and "@link(url: \"https://specs.apollo.dev/federation/v2.9\"" in sdl
    assert sdl.strip() == cli_sdl("--federation")
    assert KEYED not in cli_sdl()  # the plain SDL is unchanged


def test_a_plain_gateway_is_no_subgraph(gateway: Gateway) -> None:
    answer = gateway.gql("{ __schema { types { name } } }")
    assert not {"_Entity", "_Any", "_Service"} & {t["name"] for t in answer["data"]["__schema"]["types"]}
    refused = gateway.gql(SDL)
    assert "data" not in refused and "Cannot query field '_service'" in refused["errors"][0]["message"]


def test_entities_answer_as_customers_does(subgraph: Gateway) -> None:
    ids = IDS[:20]
    entities = subgraph.gql(ENTITIES, {"r": reps(ids)})
    customers = subgraph.gql(CUSTOMERS_FULL, {"ids": ids})
    assert "errors" not in entities and entities["data"]["_entities"] == customers["data"]["customers"]
    assert [c["id"] for c in entities["data"]["_entities"]] == ids


def test_unusable_representations_are_null_with_an_error_in_their_place(subgraph: Gateway) -> None:
    given = [*reps([IDS[0], "C-999999", "nonsense"]), {"__typename": "Review", "id": "R-1"},
             {"__typename": "Customer"}, "C-000001"]
    answer = subgraph.gql("query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } } }",
                          {"r": given})
    assert answer["data"]["_entities"] == [{"id": IDS[0]}, None, None, None, None, None]
    codes = {tuple(e["path"]): e["extensions"]["code"] for e in answer["errors"]}
    assert codes == {("_entities", 1): "NOT_FOUND", ("_entities", 2): "BAD_USER_INPUT",
                     ("_entities", 3): "BAD_USER_INPUT", ("_entities", 4): "BAD_USER_INPUT",
                     ("_entities", 5): "BAD_USER_INPUT"}
    same = subgraph.gql('{ customers(ids: ["C-999999", "nonsense"]) { id } }')
    by_id = {e["path"][1]: e["message"] for e in same["errors"]}
    assert {e["path"][1]: e["message"] for e in answer["errors"] if e["path"][1] in (1, 2)} == \
           {1: by_id[0], 2: by_id[1]}  # the very messages customers(ids:) gives


def test_hundred_representations_one_call_per_source_per_level(estate: Estate, subgraph: Gateway) -> None:
    estate.reset_stats()
    before = sql_calls(subgraph)
    answer = subgraph.gql(ENTITIES, {"r": reps(IDS)}, LIVE)
    assert "errors" not in answer and len(answer["data"]["_entities"]) == 100
    for source in BATCH_SOURCES:
        assert estate.stats(source)["requests"] == 1, source
    after = sql_calls(subgraph)
    assert {n: after[n]["calls"] - before[n]["calls"] for n in ("crosswalk", "crm", "shop")} == \
           {"crosswalk": 1, "crm": 1, "shop": 1}


def test_entities_obey_the_role_policy_as_customer_does(subgraph: Gateway) -> None:
    fields = "id emails addresses { city } accounts { number invoices { number } }"
    entity = subgraph.gql("query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { %s } } }"
                          % fields, {"r": reps(IDS[:1])}, role="pos")
    one = subgraph.gql("query($id: ID!) { customer(id: $id) { %s } }" % fields, {"id": IDS[0]}, role="pos")
    assert entity["data"]["_entities"] == [one["data"]["customer"]]
    assert all("\u2022" in e for e in one["data"]["customer"]["emails"])  # masked
    assert one["data"]["customer"]["addresses"] is None

    def refused(answer: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((e["extensions"]["code"], e["message"]) for e in answer["errors"])
    assert refused(entity) == refused(one) and {c for c, _ in refused(one)} == {"FORBIDDEN"}
    assert entity["extensions"]["masked"] == one["extensions"]["masked"]


def test_the_sdl_is_introspection_for_a_role_without_it(subgraph: Gateway) -> None:
    refused = subgraph.gql(SDL, role="partner")
    assert "data" not in refused and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    answer = subgraph.gql("query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } } }",
                          {"r": reps(IDS[:2])}, role="partner")
    assert answer["data"]["_entities"] == [{"id": IDS[0]}, {"id": IDS[1]}]


def test_ten_thousand_representations_are_refused_like_ten_thousand_ids(estate: Estate, subgraph: Gateway) -> None:
    many = [f"C-{n:06d}" for n in range(1, 10_001)]
    estate.reset_stats()
    before = sql_calls(subgraph)
    entities = subgraph.gql("query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } } }",
                            {"r": reps(many)})
    customers = subgraph.gql("query($ids: [ID!]!) { customers(ids: $ids) { id } }", {"ids": many})
    assert entities["data"] is None and customers["data"] is None
    assert entities["errors"][0]["message"] == "at most 100 representations per request, got 10000"
    assert entities["errors"][0]["extensions"]["code"] == customers["errors"][0]["extensions"]["code"] == \
        "BAD_USER_INPUT"
    assert sql_calls(subgraph)["crosswalk"]["calls"] == before["crosswalk"]["calls"]  # nothing was asked
    assert all(estate.stats(s)["requests"] == 0 for s in estate.ports)


# --- composition with a real composer ----------------------------------------------------------------

def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the composition test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def composer() -> Path:
    """A folder holding the pinned composer (npm-installed there on first use, outside the repository)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed to run @theguild/federation-composition")
    folder = Path(os.environ.get("CUSTOMER_GRAPH_NPM_CACHE", Path.home() / ".cache" / "customer-graph" / "npm"))
    installed = folder / "node_modules" / "@theguild" / "federation-composition" / "package.json"
    wanted = COMPOSER[0].rsplit("@", 1)[1]
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *COMPOSER],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"npm install {' '.join(COMPOSER)} failed in {folder}:\n{done.stderr[-2000:]}")
    return folder


def compose(composer: Path, subgraphs: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(["node", str(ROOT / "tests" / "compose_supergraph.mjs"), str(composer)],
                          input=json.dumps([{"name": n, "sdl": s} for n, s in subgraphs.items()]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def supergraph_type(sdl: str, name: str) -> str:
    found = re.search(r"^type %s\b[^{]*\{(.*?)^\}" % name, sdl, re.S | re.M)
    assert found, name
    return found.group(1)


def test_our_subgraph_composes_with_one_extending_customer(composer: Path, subgraph: Gateway) -> None:
    ours = subgraph.gql(SDL)["data"]["_service"]["sdl"]
    result = compose(composer, {"customer-graph": ours, "reviews": REVIEWS})
    assert "errors" not in result, result.get("errors")
    customer = supergraph_type(result["supergraphSdl"], "Customer")
    assert re.search(r"^  reviews: \[Review!\]!", customer, re.M)  # the other team's field
    for field in ("name", "orders", "timeline", "crossSell"):  # and ours
        assert re.search(rf"^  {field}\b", customer, re.M), field
    assert re.search(r"^  latestReviews\b", supergraph_type(result["supergraphSdl"], "Query"), re.M)


def test_the_composer_refuses_our_sdl_without_the_key(composer: Path, subgraph: Gateway) -> None:
    ours = subgraph.gql(SDL)["data"]["_service"]["sdl"]
    assert ours.count(KEYED) == 1
    result = compose(composer, {"customer-graph": ours.replace(KEYED, "type Customer {"), "reviews": REVIEWS})
    assert result.get("errors"), "a Customer without @key cannot be extended by reference"
