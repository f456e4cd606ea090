"""The identity source's declaration (`identity:`, connectors/identity.py): its checks, one line each;
the lookups it compiles; and a lookup a copy declares, end to end, over a SQLite identity source."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

import config
from connectors.identity import compile_identity
from connectors.sql import SqlConnector
from resolvers.customer import match_keys
from resolvers.errors import BadUserInput
from tests.harness import ROOT, start_gateway
from tests.test_config import edit, refused

DECLARED = yaml.safe_load((ROOT / "sources" / "crosswalk.yaml").read_text())
# A lookup the demo does not offer: a member number, typed in any case and spacing.
MEMBER = {"kind": "member", "normalize": ["trim", "upper"], "valid": "value.trim().size() <= 8",
          "invalid": "is longer than a member number"}


def declaration(**identity: Any) -> dict[str, Any]:
    """The demo's identity source, as a source's settings (its types are the process's), `identity:`
    keys replaced (None drops one) and its write module left out (so its entities are all there are)."""
    raw = {k: v for k, v in DECLARED.items() if k not in ("types", "graph", "mapping")}
    merged = {**raw["identity"], **identity}
    raw["identity"] = {k: v for k, v in merged.items() if v is not None}
    return raw


def refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(config.ConfigError) as err:
        config.source_config("people", raw, "sources/people.yaml")
    assert "\n" not in str(err.value)
    return str(err.value)


LOOKUPS = DECLARED["identity"]["lookups"]
BAD = [
    ({"lookups": {"loyaltyCard": {}}}, "identity.lookups.loyaltyCard.[key]", "should match pattern"),
    ({"lookups": {"info": {}}}, "identity.lookups", "info: not usable as an argument name"),
    ({"lookups": {**LOOKUPS, "phone": {"normalize": "soundex"}}}, "identity.lookups.phone.normalize.0",
     "got 'soundex'"),
    ({"lookups": {"email": {"valid": "value.contains('@')"}}}, "identity.lookups.email",
     "give valid (a CEL check) and invalid (its message) together"),
    ({"lookups": {"email": {"valid": "value.contains(", "invalid": "x"}}}, "identity.lookups.email.valid",
     "not valid CEL"),
    ({"lookups": {"email": {"empty": ""}}}, "identity.lookups.email.empty", "at least 1 character"),
    ({"lookups": {}, "system_id": None}, "identity", "give at least one lookup (or system_id)"),
    ({"match": None}, "identity", "match: required with lookups"),
    ({"lookups": {"system_id": {}}}, "identity", "lookups.system_id: the name of the system_id argument"),
    ({"match": "matches"}, "identity.match", "no entity 'matches' in this source (entities: identities, match, lookup)"),
    ({"system_id": {"entity": "by_id"}}, "identity.system_id.entity", "no entity 'by_id'"),
    ({"identities": None}, "identity.identities", "Field required"),
    ({"lookup": {}}, "identity.lookup", "unknown key"),
]


@pytest.mark.parametrize(("change", "where", "expected"), BAD, ids=[b[1] + "-" + b[2][:20] for b in BAD])
def test_a_bad_identity_declaration_is_one_line_naming_the_key(change: dict[str, Any], where: str,
                                                               expected: str) -> None:
    message = refusal(declaration(**change))
    assert message.startswith(f"sources/people.yaml: {where}: "), message
    assert expected in message, message


def test_e164_lookup_needs_the_sources_phone_country() -> None:
    raw = {k: v for k, v in declaration().items() if k != "options"}
    message = refusal(raw)
    assert message.startswith("sources/people.yaml: identity.lookups.phone.normalize: e164 needs the source's "
                              "options.phone_country"), message


def test_the_gateway_names_a_source_that_declares_identity(copy: Path) -> None:
    edit(copy / "gateway.yaml", {"gateway.identity": "crm"})
    assert refused(copy / "gateway.yaml") == (
        f"{copy / 'gateway.yaml'}: gateway.identity: source 'crm' declares no identity: section (the entities "
        f"that link golden ids, and findCustomers' lookups)")


def test_only_the_identity_source_declares_identity(copy: Path) -> None:
    # crm's own entity named, so that only the second source declaring identity is wrong
    edit(copy / "sources" / "crm.yaml", {"identity": {**DECLARED["identity"], "identities": "crm", "match": "crm",
                                                      "system_id": {"entity": "crm"}}})
    message = refused(copy / "gateway.yaml")
    assert message == (f"{copy / 'sources' / 'crm.yaml'}: identity: only the identity source "
                       f"(gateway.identity: crosswalk) declares identity"), message


def test_without_gateway_identity_the_source_declaring_it_is_the_identity_source(copy: Path) -> None:
    raw = yaml.safe_load((copy / "gateway.yaml").read_text())
    del raw["gateway"]["identity"]
    (copy / "gateway.yaml").write_text(yaml.safe_dump(raw))
    assert config.load(copy / "gateway.yaml").identity == "crosswalk"
    edit(copy / "sources" / "crosswalk.yaml", {}, drop=("identity",))
    assert refused(copy / "gateway.yaml").endswith("gateway.identity: expected the source that declares "
                                                   "identity: (golden ids and findCustomers' lookups); no source does")


def test_lookups_other_than_the_built_ones_are_refused(copy: Path) -> None:
    """findCustomers' arguments are built once per process, from the declaration files it was started with."""
    edit(copy / "sources" / "crosswalk.yaml", {"identity.lookups.member_no": MEMBER})
    message = refused(copy / "gateway.yaml")
    assert message.startswith(f"{copy / 'sources' / 'crosswalk.yaml'}: identity: not as the gateway's "
                              f"findCustomers was built (from "), message


# --- the lookups, compiled -------------------------------------------------------------------------

def compiled(**identity: Any) -> Any:
    source = config.source_config("people", declaration(**identity))
    assert source.identity is not None
    return compile_identity(source.identity, source.options)


def test_the_demo_lookups_keep_their_keys_and_messages() -> None:
    identity = compiled()
    given = {"email": "  Ann@Example.COM ", "phone": "(0612) 345-678", "loyalty_card": "1234 5678 9012"}
    assert match_keys(identity, given) == ["email:ann@example.com", "phone:+31612345678", "loyalty_card:123456789012"]
    assert match_keys(identity, {"phone": None, "email": None}) == []
    for name, value, message in [("email", "no-at-sign", "email 'no-at-sign' is not an email address"),
                                 ("phone", "call me", "phone 'call me' is not a phone number"),
                                 ("loyalty_card", "abc", "loyaltyCard 'abc' has no digits")]:
        with pytest.raises(BadUserInput) as err:
            match_keys(identity, {name: value})
        assert str(err.value) == message
    assert identity.none_given() == "give at least one of email, phone, loyaltyCard or systemId"


def test_a_declared_lookup_makes_its_own_keys() -> None:
    identity = compiled(lookups={**LOOKUPS, "member_no": MEMBER})
    assert match_keys(identity, {"member_no": " ab12 ", "email": "a@b.example"}) == ["email:a@b.example",
                                                                                     "member:AB12"]
    for value, message in [("  ", "memberNo '  ' has nothing to look up"),
                           ("abcdefghij", "memberNo 'abcdefghij' is longer than a member number")]:
        with pytest.raises(BadUserInput) as err:
            match_keys(identity, {"member_no": value})
        assert str(err.value) == message
    assert identity.none_given() == "give at least one of email, phone, loyaltyCard, memberNo or systemId"
    assert compiled(lookups={"member_no": MEMBER}, system_id=None).none_given() == "give memberNo"


# --- end to end, over a SQLite identity source of our own ----------------------------------------

def identity_db(path: Path) -> str:
    """A small identity source: one customer, known to one system, with an email and a member number."""
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE xref (id INTEGER PRIMARY KEY, golden_id TEXT, system TEXT, system_key TEXT);
            CREATE TABLE match_keys (golden_id TEXT, kind TEXT, match_key TEXT);
            INSERT INTO xref (golden_id, system, system_key) VALUES ('C-000001', 'crm', '1000001');
            INSERT INTO match_keys VALUES ('C-000001', 'email', 'ann@example.com'), ('C-000001', 'member', 'AB12');
        """)
    return f"sqlite+aiosqlite:///{path}"


def test_a_declared_lookup_finds_its_rows(tmp_path: Path) -> None:
    raw = {**declaration(lookups={**LOOKUPS, "member_no": MEMBER}), "dsn": identity_db(tmp_path / "people.sqlite")}
    source = config.source_config("people", raw)
    identity = compile_identity(source.identity, source.options)  # type: ignore[arg-type]

    async def find() -> dict[str, Any]:
        connector = SqlConnector(source)
        try:
            return await connector.fetch(identity.match, match_keys(identity, {"member_no": " ab12"}))  # type: ignore[arg-type]
        finally:
            await connector.close()
    assert asyncio.run(find()) == {"member:AB12": ["C-000001"]}


FIND = "query($m: String, $e: String) { findCustomers(memberNo: $m, email: $e) { id identities { system id } } }"


def test_a_declared_lookup_is_a_findcustomers_argument(copy: Path) -> None:
    """A copy of the declarations with one more lookup: the gateway started on it offers it, and finds."""
    edit(copy / "sources" / "crosswalk.yaml", {"identity.lookups.member_no": MEMBER,
                                               "dsn": identity_db(copy / "people.sqlite")})
    # The tokens are signed from the same settings; the gateway process reads the copy's folder.
    gw = start_gateway(yaml.safe_load((copy / "gateway.yaml").read_text()), copy, "member")
    try:
        ann = [{"id": "C-000001", "identities": [{"system": "crm", "id": "1000001"}]}]
        assert gw.gql(FIND, {"m": " ab12 "}) == {"data": {"findCustomers": ann}}
        assert gw.gql(FIND, {"m": "AB12", "e": " ANN@example.com"}) == {"data": {"findCustomers": ann}}
        assert gw.gql(FIND, {"m": "ZZ99"}) == {"data": {"findCustomers": []}}
        refused_input = gw.gql("{ findCustomers { id } }")
        assert refused_input["errors"][0]["message"] == ("give at least one of email, phone, loyaltyCard, "
                                                         "memberNo or systemId")
        assert refused_input["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    finally:
        gw.stop()


def test_the_golden_id_form_is_declared() -> None:
    from connectors.identity import GoldenId, IdentityDecl, compile_identity
    decl = IdentityDecl.model_validate({"identities": "links", "match": "m", "lookups": {"email": {}},
                                        "golden_id": {"pattern": "^P[0-9]+$", "example": "P17"}})
    compiled = compile_identity(decl, {})
    assert compiled.malformed("P17") is None
    assert compiled.malformed("C-000042") == "malformed customer id 'C-000042': expected the form P17"
    plain = compile_identity(decl.model_copy(update={"golden_id": GoldenId()}), {})
    assert plain.malformed("anything-42") is None and plain.malformed("two words") is not None
    with pytest.raises(ValueError, match="example: 'Q1' does not match the pattern"):
        GoldenId(pattern="^P[0-9]+$", example="Q1")
    with pytest.raises(ValueError, match="pattern: not a regular expression"):
        GoldenId(pattern="^(P")
