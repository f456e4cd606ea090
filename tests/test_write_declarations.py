"""Declared writes: a source's `actions:` (connectors/actions.py) and the mutations taking them
(schema/mutations_decl.py, compiled by schema/mutation.py, run by resolvers/mutations.py). Bad
declarations are refused in one line naming the file and key path; the values, statements and requests
are the ones declared. In-process: a SQLite file and a local HTTP server, no estate."""

from __future__ import annotations

import asyncio
import copy
import enum
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp import web

import config
from connectors.actions import compile_path, compile_value
from connectors.base import SourceConfig, SourceRejected
from connectors.expressions import compile_expr
from connectors.http import new_session
from connectors.rest import RestConnector
from connectors.sql import SqlConnector
from resolvers import mutations
from schema import mutation, mutations_decl
from schema.declared import DeclarationError
from schema.graph import enum as graph_enum
from tests.harness import ROOT
from tests.local_server import serving
from tests.test_config import check

T = TypeVar("T")
Channel = graph_enum("Channel")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


# --- values ---------------------------------------------------------------------------------------

@dataclass
class Consent:
    email: bool | None = None


@dataclass
class Given:
    channel: Any = None
    language: str | None = None
    consent: Consent | None = None


ARGS = {"input": Given(Channel.SMS, "fr", Consent(False)), "key": "+31 6/1", "keys": ["a", "b"], "customer": "C-000042",
        "system": "contact"}


def test_values_read_the_input_and_the_keys_plain_for_the_source() -> None:
    body = compile_value({"who": "$customer", "at": "$key", "all": "$keys", "how": "$input.channel",
                          "lang": "$input.language", "nested": ["$system", "$$literal", 3]})
    assert body(ARGS) == {"who": "C-000042", "at": "+31 6/1", "all": ["a", "b"], "how": Channel.SMS.value,
                          "lang": "fr", "nested": ["contact", "$literal", 3]}
    assert compile_value("$input.consent")(ARGS) == {"email": False}  # an input object as a dict
    assert compile_value("$input.consent.email")({**ARGS, "input": Given()}) is None  # not given: null


def test_a_map_translates_enums_by_name_and_other_values_as_they_are() -> None:
    code = compile_value({"value": "$input.channel", "map": {"SMS": "S", "EMAIL": "E"}})
    flag = compile_value({"value": "$input.consent.email", "map": {True: 1, False: 0}})
    assert (code(ARGS), flag(ARGS), code({**ARGS, "input": Given()})) == ("S", 0, None)
    with pytest.raises(ValueError, match="is not in its map"):
        code({**ARGS, "input": Given(Channel.FAX)})


def test_a_path_quotes_what_it_takes() -> None:
    assert compile_path("/v1/people/{key}/notes/{input.language}")(ARGS) == "/v1/people/%2B31%206%2F1/notes/fr"
    assert compile_path("/plain")(ARGS) == "/plain"


# --- actions: bad declarations, one line with the key path -------------------------------------------

REST = {"kind": "rest", "url": "http://x",
        "entities": {"notes": {"request": {"path": "/n/{key}"}, "record": "Identity",
                               "mapping": {"fields": {"system": "s", "id": "i"}}}},
        "actions": {"add": {"request": {"path": "/n", "body": {"text": "$input.text"}},
                            "answer": {"path": "note", "entity": "notes"}}}}
SQL = {"kind": "sql", "dsn": "sqlite://",
       "actions": {"set": {"update": {"table": "t", "key_column": "k", "set": {"c": "$input.c"}}},
                   "link": {"insert": {"table": "t", "values": {"a": "$customer", "b": "$key"}, "unique": ["a", "b"]}}}}


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(config.ConfigError) as caught:
        config.source_config("notes", raw, "notes.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def change(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return out


def test_good_actions_are_accepted() -> None:
    assert sorted(config.source_config("notes", REST).actions) == ["add"]
    assert sorted(config.source_config("db", SQL).actions) == ["link", "set"]


@pytest.mark.parametrize(("raw", "expected"), [
    (change(REST, "actions.add.request.body.text", "$inptu.text"),
     "notes.yaml: actions.add.request.body: text: unknown value '$inptu.text' (one of $input.<field>, $key"),
    (change(REST, "actions.add.request.headers", {"K": "$key.x"}),
     "actions.add.request.headers.K: '$key.x': only $input has fields"),
    (change(REST, "actions.add.request.path", "/n/{keys}"), "actions.add.request.path: {keys} is not one value"),
    (change(REST, "actions.add.request.methd", "POST"), "actions.add.request.methd: unknown key"),
    (change(REST, "actions.add.answer.entity", "nope"),
     "notes.yaml: actions.add.answer.entity: no entity 'nope' with a mapping here (notes)"),
    (change(REST, "actions.add.rejects", [{"status": 500, "code": "X", "message": "m"}]),
     "actions.add.rejects.0.status: Input should be less than or equal to 499"),
    (change(REST, "actions.add.rejects", [{"status": 422, "code": "bad code", "message": "m"}]),
     "actions.add.rejects.0.code: String should match pattern"),
    (change(REST, "actions.add.update", {"table": "t", "key_column": "k", "set": {"c": 1}}),
     "actions.add: give one of request (rest), update or insert (sql)"),
    (change(REST, "actions.Add", {"request": {"path": "/n"}}), "actions.Add.[key]: String should match pattern"),
    (change(SQL, "actions.set.update.set", {"c": "$input.c", "keys": 1}), "actions.set.update: set.keys"),
    (change(SQL, "actions.set.update.set", {}), "actions.set.update.set: Dictionary should have at least 1 item"),
    (change(SQL, "actions.set.update.set", {"bad col": 1}),
     "actions.set.update.set.bad col.[key]: String should match"),
    (change(SQL, "actions.link.insert.unique", ["c"]), "actions.link.insert: unique: 'c' is not one of the values"),
    (change(SQL, "actions.link.insert.unique", None), "actions.link.insert.unique: Field required"),
    (change(SQL, "actions.set", {"request": {"path": "/x"}}), "actions.set: an action of a sql source gives update "
                                                              "or insert"),
    (change(SQL, "actions.set.rejects", [{"status": 422, "code": "X", "message": "m"}]),
     "actions.set: rejects: for a request (rest)"),
    ({"kind": "graphql", "url": "http://x", "actions": SQL["actions"]}, "a graphql source takes no actions"),
])
def test_bad_actions_are_refused_naming_the_key(raw: dict[str, Any], expected: str) -> None:
    message = refused(raw)
    assert message.startswith("notes.yaml: ") and expected in message, message


# --- actions: what they run -----------------------------------------------------------------------

def sqlite_source(tmp_path: Path, actions: dict[str, Any]) -> SqlConnector:
    db = tmp_path / "people.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE people (no TEXT PRIMARY KEY, lang TEXT, mode TEXT, ok INTEGER);"
                           "INSERT INTO people VALUES ('1', 'en', 'E', 1), ('2', 'en', 'E', 1), ('3', 'en', 'E', 1);"
                           "CREATE TABLE links (id INTEGER PRIMARY KEY, g TEXT, s TEXT, k TEXT, UNIQUE (g, s, k));")
    return SqlConnector(SourceConfig(name="people", kind="sql", system="people", dsn=f"sqlite+aiosqlite:///{db}",
                                     actions=actions))


SQL_ACTIONS = {
    "prefs": {"update": {"table": "people", "key_column": "no", "set": {
        "lang": "$input.language", "mode": {"value": "$input.channel", "map": {"SMS": "S", "EMAIL": "E"}},
        "ok": {"value": "$input.consent.email", "map": {True: 1, False: 0}}}}},
    "link": {"insert": {"table": "links", "values": {"g": "$customer", "s": "$system", "k": "$key"},
                        "unique": ["g", "s", "k"]}},
}


def test_an_update_sets_the_given_columns_on_every_key_in_one_statement(tmp_path: Path) -> None:
    c = sqlite_source(tmp_path, SQL_ACTIONS)

    async def scenario() -> list[int]:
        try:
            return [await c.write("prefs", {**ARGS, "keys": ["1", "3"]}),
                    await c.write("prefs", {**ARGS, "keys": ["2"], "input": Given(language="de")}),
                    await c.write("prefs", {**ARGS, "keys": ["2"], "input": Given()})]  # nothing given: nothing run
        finally:
            await c.close()

    assert run(scenario) == [2, 1, 0]
    rows = sqlite3.connect(tmp_path / "people.sqlite").execute("SELECT no, lang, mode, ok FROM people ORDER BY no")
    assert rows.fetchall() == [("1", "fr", "S", 0), ("2", "de", "E", 1), ("3", "fr", "S", 0)]


def test_an_insert_adds_its_row_once(tmp_path: Path) -> None:
    c = sqlite_source(tmp_path, SQL_ACTIONS)

    async def scenario() -> list[Any]:
        try:
            first = await c.write("link", ARGS)
            again = await c.write("link", ARGS)
            raced = await asyncio.gather(*(c.write("link", {**ARGS, "key": "other"}) for _ in range(5)))
            return [first, again, sorted(raced)]
        finally:
            await c.close()

    assert run(scenario) == [True, False, [False, False, False, False, True]]
    assert sqlite3.connect(tmp_path / "people.sqlite").execute("SELECT COUNT(*) FROM links").fetchone() == (2,)


def test_a_request_sends_what_is_declared_and_maps_its_answer() -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path_qs, {k: v for k, v in request.headers.items() if k.startswith("X-")}, body))
        if body["text"] == "again":
            return web.json_response({"error": "key reused, sorry"}, status=422)
        return web.json_response({"note": {"s": "notes", "i": "N-1"}}, status=201)

    raw = change(REST, "actions.add.request", {
        "path": "/n/{customer}", "params": {"v": 2, "skip": "$input.nothing"},
        "headers": {"X-Key": "$input.key", "X-None": "$input.nothing"}, "body": {"text": "$input.text", "to": "$key"}})
    raw["actions"]["add"]["rejects"] = [{"status": 422, "body_contains": "reused", "code": "IDEMPOTENCY_KEY_REUSED",
                                        "message": "use a new key"}]

    async def scenario() -> tuple[Any, SourceRejected]:
        app = web.Application()
        app.router.add_post("/n/{customer}", handle)
        async with serving(app) as url:
            session = new_session()
            c = RestConnector(config.source_config("notes", {**raw, "url": url}), session)
            try:
                made = await c.write("add", {**ARGS, "input": {"text": "hi", "key": "k-123456"}})
                with pytest.raises(SourceRejected) as caught:
                    await c.write("add", {**ARGS, "input": {"text": "again", "key": "k-123456"}})
                return made, caught.value
            finally:
                await session.close()

    made, rejected = run(scenario)
    assert (made.system, made.id) == ("notes", "N-1")  # the entity's mapping, on the answer's `note`
    assert seen[0] == ("/n/C-000042?v=2", {"X-Key": "k-123456"}, {"text": "hi", "to": "+31 6/1"})
    assert rejected.extensions == {"code": "IDEMPOTENCY_KEY_REUSED", "source": "notes"}


# --- mutations: bad declarations -----------------------------------------------------------------

INPUTS = {"NoteInput": {"fields": {"customer_id": "ID!", "channel": "Channel!", "text": {"type": "String!",
                                                                                        "normalize": "trim"},
                                   "idempotency_key": "String!", "author": "String", "extra": "ExtraInput"}},
          "ExtraInput": {"fields": {"flag": "Boolean"}}}
MUTATION = {"input": "NoteInput", "action": "add", "returns": "Identity", "idempotency_key": "idempotency_key",
            "validate": [{"require": "channel in ['SMS', 'EMAIL'] && size(text) > 0", "message": "bad"}],
            "exists": {"author": {"entity": "agents", "message": "unknown author '{{author}}'"}},
            "keys": {"link": "crm.phones", "missing": "customer {{customer_id}} has no number"},
            "invalidates": ["notes"]}


def built(mutations_raw: dict[str, Any], inputs: dict[str, Any] | None = None) -> list[mutations.Plan]:
    declared = mutations_decl.declared_of({"inputs": INPUTS if inputs is None else inputs,
                                           "mutations": mutations_raw}, "notes.yaml")
    return mutation.build(declared)[1]


def test_a_good_mutation_compiles_into_a_plan() -> None:
    [plan] = built({"add_note": MUTATION})
    assert (plan.name, plan.source, plan.action, plan.returns) == ("addNote", "notes", "add", "Identity")
    assert plan.input_paths == {"customer_id", "channel", "text", "idempotency_key", "author", "extra", "extra.flag"}
    assert plan.link == mutations.Link("crm", "phones", None, "link")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("validate", [{"require": "chanel == 'SMS'", "message": "m"}],
     "notes.yaml: mutations.add_note.validate.0.require: no field 'chanel' here (fields: customer_id, channel"),
    ("validate", [{"require": "channel == 'PIGEON'", "message": "m"}],
     "mutations.add_note.validate.0.require: 'PIGEON' is not a Channel (one of WEB"),
    ("validate", [{"require": "channel ==", "message": "m"}], "mutations.add_note.validate.0.require: not valid CEL"),
    ("validate", [{"message": "m"}], "mutations.add_note.validate.0.require: Field required"),
    ("exists", {"writer": {"entity": "agents", "message": "m"}}, "mutations.add_note.exists.writer: NoteInput has "
                                                                  "no field 'writer'"),
    ("exists", {"author": {"entity": "agents", "message": "{{nobody}}"}},
     "mutations.add_note.exists.author.message: no field 'nobody' here"),
    ("keys", {"link": "phones"}, "mutations.add_note.keys.link.from: String should match pattern"),
    ("keys", {"link": {"from": "crm.phones", "normalize": "shout"}},
     "mutations.add_note.keys.link.normalize: unknown normalisation 'shout'"),
    ("keys", {"link": {"from": "crm.phones", "normalize": "e164"}},
     "mutations.add_note.keys.link.normalize: e164 needs the source's options.phone_country"),
    ("keys", {"missing": "{{ customer_id + }}"}, "mutations.add_note.keys.missing: not valid CEL"),
    ("customer", "golden", "mutations.add_note.customer: NoteInput has no field 'golden'"),
    ("idempotency_key", "key", "mutations.add_note.idempotency_key: NoteInput has no field 'key'"),
    ("input", "NopeInput", "mutations.add_note.input: no input type 'NopeInput' (inputs: ExtraInput, NoteInput)"),
    ("returns", "Nothing", "mutations.add_note.returns: 'Nothing' is not a declared type (nor Customer)"),
    ("action", "Add", "mutations.add_note.action: String should match pattern"),
    ("colour", "red", "mutations.add_note.colour: unknown key"),
])
def test_bad_mutations_are_refused_naming_the_key(key: str, value: Any, expected: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        built({"add_note": {**MUTATION, key: value}})
    assert str(caught.value).startswith("notes.yaml: ") and expected in str(caught.value), caught.value


@pytest.mark.parametrize(("inputs", "expected"), [
    ({**INPUTS, "NoteInput": {"fields": {"customerId": "ID!"}}},
     "inputs.NoteInput.fields: field 'customerId': names are snake_case"),
    ({**INPUTS, "ExtraInput": {"fields": {"flag": "Interaction"}}},
     "inputs.ExtraInput.fields.flag.type: 'Interaction' is not a scalar, a declared enum or an input type (an output"),
    ({**INPUTS, "ExtraInput": {"fields": {"back": "NoteInput"}}}, "inputs.NoteInput: refers to itself through "
                                                                 "NoteInput -> ExtraInput"),
    ({**INPUTS, "Channel": {"fields": {"a": "Int"}}},
     "inputs.Channel: also the name of a declared type, enum or scalar"),
    ({**INPUTS, "ExtraInput": {"fields": {"flag": {"type": "String", "normalize": "e164"}}}},
     "inputs.ExtraInput.fields.flag.normalize.0: Input should be 'trim'"),
    ({**INPUTS, "ExtraInput": {"fields": {}}}, "inputs.ExtraInput.fields: Dictionary should have at least 1 item"),
])
def test_bad_inputs_are_refused_naming_the_key(inputs: dict[str, Any], expected: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        built({"add_note": MUTATION}, inputs)
    assert str(caught.value).startswith("notes.yaml: ") and expected in str(caught.value), caught.value


def test_mutations_live_in_their_sources_file_once(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="^_shared.yaml: mutations: declared in the file of the source"):
        mutations_decl.declared_of({"mutations": {"add_note": MUTATION}}, "_shared.yaml", shared=True)
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump({"mutations": {"add_note": MUTATION}}))
    with pytest.raises(DeclarationError, match="^b.yaml: mutations.add_note: already declared in a.yaml$"):
        mutations_decl.load(tmp_path)


# --- mutations against the configured sources ------------------------------------------------------

def demo(**changes: Any) -> config.GatewayConfig:
    """The demo's configuration, with some of its declarations changed (`contact.actions...`)."""
    raw = config.inline(ROOT / "gateway.yaml")
    for path, value in changes.items():
        raw["sources"] = change(raw["sources"], path, value)
    return config.parse(raw, ROOT)


def test_the_demo_mutations_suit_their_actions() -> None:
    mutations.check(mutation.PLANS, demo())
    assert [(p.name, p.source, p.action) for p in mutation.PLANS] == [
        ("recordInteraction", "contact", "create_interaction"), ("updatePreferences", "crm", "update_preferences")]
    cfg = demo()
    del cfg.sources["contact"]  # not configured: the mutation answers BAD_USER_INPUT when called
    mutations.check(mutation.PLANS, cfg)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"contact.actions.create_interaction.request.headers": {}},
     "contact.yaml: mutations.record_interaction.idempotency_key: contact's action create_interaction does not send "
     "$input.idempotency_key"),
    ({"contact.actions.create_interaction.request.body.mood": "$input.mood"},
     "contact.yaml: mutations.record_interaction.action: contact's action create_interaction reads $input.mood, "
     "which the mutation's input has not"),
    ({"crm.actions.update_preferences.update.set.x": "$input.consent.colour"}, "reads $input.consent.colour"),
    ({"contact.actions.create_interaction": None},
     "contact.yaml: mutations.record_interaction.action: source 'contact' declares no action 'create_interaction' "
     "(its actions: none)"),
    ({"contact.actions.create_interaction.answer": None},
     "mutations.record_interaction.returns: contact's action create_interaction answers no record (no answer: "
     "entity), not Interaction"),
    ({"crosswalk.actions.link": None}, "mutations.record_interaction.keys.link.action: the identity source "
                                       "'crosswalk' declares no action 'link'"),
])
def test_a_mutation_that_does_not_suit_its_action_is_refused(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        mutations.check(mutation.PLANS, demo(**changes))
    assert expected in str(caught.value), caught.value


class Mode(enum.Enum):
    A = "a"
    B = "b"


@dataclass
class Row:
    mode: Mode | None


def test_an_enum_compared_with_null_is_not_a_member_name() -> None:
    unset_or_a = compile_expr("mode == null || mode == 'A'", Row)
    assert [unset_or_a(Row(m)) for m in (None, Mode.A, Mode.B)] == [True, True, False]


def test_check_names_the_file_and_key_of_a_broken_write(copy: Path) -> None:
    contact = copy / "sources" / "contact.yaml"
    raw = yaml.safe_load(contact.read_text())
    raw["mutations"]["record_interaction"]["validate"][0]["require"] = "chanel == 'SMS'"
    contact.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = check("--config", str(copy / "gateway.yaml"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("config error: contact.yaml: mutations.record_interaction.validate.0.require: "
                                  "no field 'chanel' here"), done.stderr
    raw["mutations"]["record_interaction"]["validate"][0]["require"] = "channel == 'SMS'"
    del raw["actions"]["create_interaction"]["request"]["headers"]
    contact.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = check("--config", str(copy / "gateway.yaml"))
    assert done.stderr.strip() == ("config error: contact.yaml: mutations.record_interaction.idempotency_key: "
                                   "contact's action create_interaction does not send $input.idempotency_key (in a "
                                   "header, the body or a unique column)"), done.stderr
