"""README "Add your own system", done as written: two systems the estate does not have (a REST service
of survey answers keyed by email, a SQL table of store visits keyed by CRM number), each one declaration
file taken from the README's code blocks, no Python; a copy of the demo's config and sources beside them;
`gateway.py check`, `schema`, `token` and `serve` given `--config` on that copy.

Checked: the new fields in the SDL; 50 customers cost one call at the survey service (counted there)
and one read of the table (the gateway's per-source counters); the answers against the services' own
data; the survey service down leaves the other fields answered and an error naming `surveys`; the TTL
cache; a broken declaration is one line naming its file and key path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from estate.generate import Estate as EstateData
from schema import graph
from schema.declared import DeclarationError
from tests import store_visits
from tests.harness import LIVE, ROOT, Estate, Gateway, http, serve_file
from tests.survey_service import answers_for
from tests.truth import Truth

SECTION = "## Add your own system"
DECLARATION = re.compile(r"```yaml\n(# my/sources/(\w+)\.yaml\n.*?)```", re.S)
IDS = [f"C-{n:06d}" for n in range(1, 51)]


def readme_declarations() -> dict[str, str]:
    """The declaration files the README's walk-through shows whole: file name -> text."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{SECTION}\n")
    section = text[start:text.index("\n## ", start + 1)]
    return {f"{name}.yaml": body for body, name in DECLARATION.findall(section)}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`gateway.py ARGS`, with `env` added to the environment."""
    return subprocess.run([sys.executable, "gateway.py", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=120, env={**os.environ, **(env or {})})


def my_folder(where: Path) -> Path:
    """Step 1 and 3: the demo's gateway.yaml, sources and operations copied, the README's two files added."""
    where.mkdir(parents=True)
    shutil.copy(ROOT / "gateway.yaml", where / "gateway.yaml")
    shutil.copytree(ROOT / "sources", where / "sources")
    shutil.copytree(ROOT / "operations", where / "operations")
    for name, text in readme_declarations().items():
        (where / "sources" / name).write_text(text)
    return where


@dataclass
class Surveys:
    """The survey service, a process of its own."""

    proc: subprocess.Popen[str]
    url: str

    def stats(self) -> dict[str, dict[str, int]]:
        return json.loads(http("GET", f"{self.url}/__stats")[2])["endpoints"]  # type: ignore[no-any-return]

    def reset(self) -> None:
        http("POST", f"{self.url}/__stats/reset")

    def faults(self, faults: dict[str, Any]) -> None:
        status, _, body = http("POST", f"{self.url}/__faults", json.dumps(faults).encode(),
                               {"content-type": "application/json"})
        assert status == 200, body


@pytest.fixture(scope="module")
def my(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return my_folder(tmp_path_factory.mktemp("newcomer") / "my")


@pytest.fixture(scope="module")
def surveys(estate: Estate) -> Iterator[Surveys]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.survey_service", "--crm", str(estate.data / "crm.sqlite"),
                             "--port", "0", "--as-of", estate.as_of.isoformat(), "--exit-with-parent"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    try:
        yield Surveys(proc, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def env(estate: Estate, surveys: Surveys, my: Path) -> dict[str, str]:
    """Step 2 and 6: the table written, and every source's URL or DSN from the environment."""
    visits = my.parent / "visits.sqlite"
    store_visits.create(visits, estate.data / "crm.sqlite", estate.as_of)
    return {**{f"{name.upper()}_URL": estate.url(name) for name in estate.ports},
            "ESTATE_DATA": str(estate.data), "SURVEYS_URL": surveys.url,
            "VISITS_DSN": f"sqlite+aiosqlite:///{visits}"}


@pytest.fixture(scope="module")
def mine(my: Path, env: dict[str, str]) -> Iterator[Gateway]:
    done = cli("token", "--role", "agent", "--config", str(my / "gateway.yaml"), env=env)
    assert done.returncode == 0, done.stderr
    gw = serve_file(my / "gateway.yaml", my.parent, "newcomer", env=env, tokens={"agent": done.stdout.split()[-1]})
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def known(truth: EstateData) -> Truth:
    return Truth(truth)


def emails(t: Truth, gid: str) -> list[str]:
    return sorted({r["email_addr"].strip().lower() for r in t.crm(gid) if r["email_addr"]})


def expected_answers(t: Truth, gid: str, as_of: date) -> list[dict[str, Any]]:
    found = [a for e in emails(t, gid) for a in answers_for(e, as_of)]
    return sorted(({"survey": a["survey"].upper(), "score": a["score"], "answeredAt": a["answered_at"],
                    "comment": a["comment"]} for a in found), key=lambda a: a["answeredAt"], reverse=True)


def expected_visits(t: Truth, gid: str, as_of: date) -> list[dict[str, Any]]:
    found = [v for r in t.crm(gid) for v in store_visits.visits_for(r["cust_no"], as_of)]
    out = [{"id": v["visit_id"], "store": v["store_name"], "purpose": v["purpose"].upper(),
            "visitedAt": datetime.fromisoformat(v["visited_at"]).replace(tzinfo=timezone.utc).isoformat(),
            "spent": v["spent_cents"] / 100} for v in found]
    return sorted(out, key=lambda v: (v["visitedAt"], v["id"]), reverse=True)


def counters(gw: Gateway, source: str) -> tuple[int, int]:
    """The gateway's calls and keys asked of a source since it started (/readyz)."""
    s = json.loads(http("GET", f"{gw.url}/readyz")[2])["sources"][source]
    return s["calls"], s["keys"]


QUERY = """query($ids: [ID!]!) { customers(ids: $ids) { id name
  surveyAnswers { survey score answeredAt comment } lastSurvey { survey score answeredAt }
  storeVisits { id store purpose visitedAt spent } } }"""


# ---- (a) the schema


def test_the_readme_shows_both_declarations_whole() -> None:
    files = readme_declarations()
    assert set(files) == {"surveys.yaml", "visits.yaml"}
    assert "graph:" in files["surveys.yaml"] and "keys: {from: crm.email" in files["surveys.yaml"]
    assert "kind: sql" in files["visits.yaml"] and "keys: {from: crm.crm_id}" in files["visits.yaml"]


def test_check_lists_the_new_sources_and_customer_fields(my: Path) -> None:
    done = cli("check", "--config", str(my / "gateway.yaml"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "sources (14):" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert rows["surveys"][1:4] == ["rest", "http://127.0.0.1:9110", "survey_answers"]
    assert rows["visits"][1] == "sql" and rows["visits"][3] == "store_visits"
    for field in ("surveyAnswers: [SurveyAnswer!]", "lastSurvey: SurveyAnswer", "storeVisits: [StoreVisit!]"):
        assert field in out


def test_the_new_fields_are_in_the_sdl(my: Path) -> None:
    done = cli("schema", "--config", str(my / "gateway.yaml"))
    assert done.returncode == 0, done.stderr
    sdl = done.stdout
    assert ("surveyAnswers(survey: Survey = null, detractor: Boolean = null, since: DateTime = null, "
            "first: Int = 10): [SurveyAnswer!]") in sdl
    assert "  lastSurvey: SurveyAnswer\n" in sdl
    assert "storeVisits(purpose: VisitPurpose = null, withinDays: Int = null, first: Int = 20): [StoreVisit!]" in sdl
    assert re.search(r"type SurveyAnswer \{\n  survey: Survey!\n  score: Int!\n  answeredAt: DateTime!\n"
                     r"  comment: String\n\}", sdl)
    assert "enum VisitPurpose {\n  PURCHASE\n  RETURN\n  REPAIR\n  BROWSE\n}" in sdl
    demo = cli("schema")
    assert demo.returncode == 0 and "surveyAnswers" not in demo.stdout and "StoreVisit" not in demo.stdout


# ---- (b) one call per level, counted at the sources; the answers are the services' data


def test_fifty_customers_cost_one_call_at_each_new_source(mine: Gateway, surveys: Surveys, known: Truth,
                                                         estate: Estate) -> None:
    surveys.reset()
    before = {s: counters(mine, s) for s in ("visits", "crm")}
    answer = mine.gql(QUERY, {"ids": IDS}, LIVE)
    assert "errors" not in answer, answer["errors"][:3]
    asked = {e for gid in IDS for e in emails(known, gid)}
    assert surveys.stats() == {"batchGet": {"calls": 1, "keys": len(asked)}, "get": {"calls": 0, "keys": 0}}
    numbers = {r["cust_no"] for gid in IDS for r in known.crm(gid)}
    calls, keys = counters(mine, "visits")
    assert (calls - before["visits"][0], keys - before["visits"][1]) == (1, len(numbers))
    assert counters(mine, "crm")[0] - before["crm"][0] == 1  # both keyed by the one CRM read
    customers = answer["data"]["customers"]
    assert [c["id"] for c in customers] == IDS
    for c in customers:
        answers = expected_answers(known, c["id"], estate.as_of)
        assert c["surveyAnswers"] == answers, c["id"]
        assert c["lastSurvey"] == ({k: answers[0][k] for k in ("survey", "score", "answeredAt")} if answers else None)
        assert c["storeVisits"] == expected_visits(known, c["id"], estate.as_of), c["id"]
    assert sum(bool(c["surveyAnswers"]) for c in customers) > 10 and sum(bool(c["storeVisits"]) for c in customers) > 10


def test_the_declared_arguments_filter(mine: Gateway, known: Truth, estate: Estate) -> None:
    query = """query($ids: [ID!]!, $since: DateTime!) { customers(ids: $ids) { id
      nps: surveyAnswers(survey: NPS) { score answeredAt } detractors: surveyAnswers(detractor: true) { score }
      recent: surveyAnswers(since: $since) { answeredAt } one: surveyAnswers(first: 1) { answeredAt }
      purchases: storeVisits(purpose: PURCHASE) { id } month: storeVisits(withinDays: 30) { id } } }"""
    since = datetime.combine(estate.as_of, datetime.min.time(), timezone.utc) - timedelta(days=90)
    t0 = datetime.now(timezone.utc)
    customers = mine.gql(query, {"ids": IDS, "since": since.isoformat()})["data"]["customers"]
    t1 = datetime.now(timezone.utc)
    for c in customers:
        answers = expected_answers(known, c["id"], estate.as_of)
        nps = [a for a in answers if a["survey"] == "NPS"]
        assert c["nps"] == [{"score": a["score"], "answeredAt": a["answeredAt"]} for a in nps]
        assert c["detractors"] == [{"score": a["score"]} for a in nps if a["score"] <= 6]
        assert c["recent"] == [{"answeredAt": a["answeredAt"]} for a in answers
                               if datetime.fromisoformat(a["answeredAt"]) >= since]
        assert c["one"] == [{"answeredAt": a["answeredAt"]} for a in answers[:1]]
        visits = expected_visits(known, c["id"], estate.as_of)
        assert c["purchases"] == [{"id": v["id"]} for v in visits if v["purpose"] == "PURCHASE"]
        got = {v["id"] for v in c["month"]}  # the cut-off is the gateway's now: between t0 and t1
        assert {v["id"] for v in visits if datetime.fromisoformat(v["visitedAt"]) >= t1 - timedelta(days=30)} <= got
        assert got <= {v["id"] for v in visits if datetime.fromisoformat(v["visitedAt"]) >= t0 - timedelta(days=30)}


# ---- (c) the survey service down


@pytest.mark.parametrize("fault", [{"down": True}, {"status": 500}], ids=["down", "500"])
def test_the_survey_service_down_leaves_the_rest_answered(mine: Gateway, surveys: Surveys, known: Truth,
                                                        estate: Estate, fault: dict[str, Any]) -> None:
    ids = [f"C-{n:06d}" for n in range(101, 111)]
    surveys.faults(fault)
    try:
        answer = mine.gql(QUERY, {"ids": ids}, LIVE)
    finally:
        surveys.faults({})
    customers = answer["data"]["customers"]
    assert [c["id"] for c in customers] == ids
    for c in customers:
        assert c["name"] and c["storeVisits"] == expected_visits(known, c["id"], estate.as_of)
        assert c["surveyAnswers"] is None and c["lastSurvey"] is None
    errors = {tuple(e["path"]): e for e in answer["errors"]}
    for i in range(len(ids)):
        for field in ("surveyAnswers", "lastSurvey"):
            error = errors[("customers", i, field)]
            assert error["extensions"]["source"] == "surveys", error
            assert error["extensions"]["code"] == "SOURCE_UNAVAILABLE", error
    assert all(e["extensions"]["source"] == "surveys" for e in answer["errors"])
    healed = mine.gql(QUERY, {"ids": ids}, LIVE)  # and back as soon as it is
    assert "errors" not in healed
    assert [c["surveyAnswers"] for c in healed["data"]["customers"]] == \
        [expected_answers(known, gid, estate.as_of) for gid in ids]


# ---- (d) the TTL cache


def test_within_the_ttl_a_repeated_query_calls_no_source(mine: Gateway, surveys: Surveys) -> None:
    ids = {"ids": [f"C-{n:06d}" for n in range(201, 221)]}
    first = mine.gql(QUERY, ids)
    surveys.reset()
    visits = counters(mine, "visits")[0]
    assert mine.gql(QUERY, ids)["data"] == first["data"]  # ttl_s: 300 and 60, far from over
    assert surveys.stats()["batchGet"]["calls"] == 0 and counters(mine, "visits")[0] == visits
    assert mine.gql(QUERY, ids, LIVE) == first  # Cache-Control: no-cache reads live
    assert surveys.stats()["batchGet"]["calls"] == 1 and counters(mine, "visits")[0] == visits + 1


# ---- (e) a broken declaration: one line, its file and key path


BROKEN = [  # (file, text, replaced by, what the one line says)
    ("surveys.yaml", "        answered_at: {type: datetime}", "        answerd_at: {type: datetime}",
     "surveys.yaml: entities.survey_answers.mapping.fields.answerd_at: SurveyAnswer has no field 'answerd_at'"),
    ("surveys.yaml", "kind: rest\n", "kind: rest\nconcurrency: 0\n",
     "surveys.yaml: concurrency: Input should be greater than or equal to 1"),
    ("surveys.yaml", "keys: {from: crm.email,", "keys: {from: crm.mail,",
     "surveys.yaml: entities.survey_answers.keys.from: CrmRecord (entity crm) has no field 'mail'"),
    ("surveys.yaml", "keys: {from: crm.email,", "keys: {from: crn.email,",
     "surveys.yaml: entities.survey_answers.keys.from: no source provides an entity 'crn'"),
    ("visits.yaml", "{within_days: visited_at}", "{within_days: visted_at}",
     "visits.yaml: graph.Customer.store_visits: args.within_days.within_days: no field 'visted_at' in StoreVisit"),
    ("visits.yaml", "      purpose: VisitPurpose!", "      purpose: VisitPurpse!",
     "visits.yaml: types.StoreVisit.fields.purpose.type: unknown type 'VisitPurpse'"),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), BROKEN, ids=[
    "mapping-field-typo", "concurrency-0", "keys-from-field-typo", "keys-from-entity-typo", "graph-arg-field-typo",
    "unknown-type"])
def test_check_names_the_file_and_key_of_a_broken_declaration(tmp_path: Path, file: str, old: str, new: str,
                                                              expected: str) -> None:
    broken = my_folder(tmp_path / "my")
    path = broken / "sources" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    done = cli("check", "--config", str(broken / "gateway.yaml"))
    assert done.returncode != 0 and "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: ") and expected in lines[0], done.stderr


def test_a_key_from_a_missing_entity_or_field_is_refused_in_process(copy: Path) -> None:
    """Unchecked, a typo in `keys: {from:}` left the field it feeds empty for every customer, silently."""
    import gateway
    shipping = copy / "sources" / "shipping.yaml"
    text = shipping.read_text()
    for wrong, message in (("orders.numbr", "Order (entity orders) has no field 'numbr' (fields: number, "),
                           ("order.number", "no source provides an entity 'order' (entities: accounts, ")):
        shipping.write_text(text.replace("keys: {from: orders.number}", f"keys: {{from: {wrong}}}"))
        with pytest.raises(SystemExit) as exc:
            gateway.checked(str(copy / "gateway.yaml"))
        assert str(exc.value).startswith(f"config error: {shipping}: entities.shipments.keys.from: {message}")


def test_an_unknown_type_names_the_file_using_it(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: rest\ntypes: {Thing: {fields: {x: Int}}}\n")
    (tmp_path / "b.yaml").write_text("kind: rest\ntypes: {Other: {fields: {thing: Thing, y: Thingy}}}\n")
    with pytest.raises(DeclarationError, match=r"^b.yaml: types.Other.fields.y.type: unknown type 'Thingy'"):
        graph.load_declarations(tmp_path)
