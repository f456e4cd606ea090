"""POST /events' checks (server/events.py), in-process with an injected clock: a delivery is accepted only
when signed with its source's secret over its timestamp and body, within the replay window, and new;
the `events:` declarations are checked at load with one line naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import config
from server.events import SIGNATURE, TIMESTAMP, Refused, Webhooks, sign
from server.settings import EventSettings
from tests.harness import ROOT
from tests.test_config import check, edit, refused

SECRET = "helpdesk-secret-0123456789"
NOW = 1_767_225_600.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def hooks(clock: Clock, webhook: dict[str, Any] | None = None, **settings: Any) -> Webhooks:
    raw = config.inline(ROOT / "gateway.yaml")
    raw["sources"]["helpdesk"]["events"]["webhook"] = webhook or {"secret": SECRET}
    return Webhooks(config.parse(raw, ROOT).sources, EventSettings(**settings), clock)


def delivery(events: Any, at: float = NOW, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(events).encode()
    stamp = str(int(at))
    return {TIMESTAMP: stamp, SIGNATURE: sign(secret.encode(), stamp, body)}, body


TICKET = {"source": "helpdesk", "entity": "tickets", "key": "ann@example.com", "change": "changed"}


def refusal(w: Webhooks, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    with pytest.raises(Refused) as err:
        w.accept(headers, body)
    return err.value.status, err.value.code


def test_a_signed_fresh_delivery_is_accepted_once() -> None:
    clock = Clock()
    w = hooks(clock)
    headers, body = delivery([TICKET, {**TICKET, "key": "bob@example.com", "at": "2026-01-01T00:00:00Z"}])
    events = w.accept(headers, body)
    assert [(e.source, e.entity, e.key, e.change) for e in events] == [
        ("helpdesk", "tickets", "ann@example.com", "changed"), ("helpdesk", "tickets", "bob@example.com", "changed")]
    assert events[1].at == 1_767_225_600.0
    assert refusal(w, headers, body) == (409, "REPLAYED")
    clock.now += 299  # still within the window: still a replay
    assert refusal(w, headers, body) == (409, "REPLAYED")
    fresh_headers, fresh_body = delivery(TICKET, at=clock.now)  # the same event sent again later is a new delivery
    assert w.accept(fresh_headers, fresh_body)[0].key == "ann@example.com"


def test_bad_signatures_are_refused() -> None:
    w = hooks(Clock())
    headers, body = delivery(TICKET)
    assert refusal(w, {**headers, SIGNATURE: "sha256=" + "0" * 64}, body) == (401, "BAD_SIGNATURE")
    assert refusal(w, *delivery(TICKET, secret="another-secret-0123456789")) == (401, "BAD_SIGNATURE")
    assert refusal(w, headers, body.replace(b"ann", b"eve")) == (401, "BAD_SIGNATURE")  # the body altered
    assert refusal(w, {**headers, TIMESTAMP: str(int(NOW) + 1)}, body) == (401, "BAD_SIGNATURE")  # the time altered
    assert refusal(w, {SIGNATURE: headers[SIGNATURE]}, body) == (401, "BAD_SIGNATURE")
    assert refusal(w, {TIMESTAMP: headers[TIMESTAMP]}, body) == (401, "BAD_SIGNATURE")
    assert refusal(w, {**headers, TIMESTAMP: "-5"}, body) == (401, "BAD_SIGNATURE")
    flood = ", ".join(["sha256=" + "0" * 64] * 4 + [headers[SIGNATURE]])
    assert refusal(w, {**headers, SIGNATURE: flood}, body) == (401, "BAD_SIGNATURE")  # the right one fifth
    # Refusals are not remembered: the genuine delivery still goes through.
    assert len(w.accept(headers, body)) == 1


def test_a_timestamp_outside_the_window_is_refused_either_way() -> None:
    clock = Clock()
    w = hooks(clock, replay_window_s=300)
    assert refusal(w, *delivery(TICKET, at=NOW - 301)) == (401, "STALE_TIMESTAMP")
    assert refusal(w, *delivery(TICKET, at=NOW + 301)) == (401, "STALE_TIMESTAMP")
    assert w.accept(*delivery(TICKET, at=NOW - 299))


def test_several_signatures_and_a_previous_secret_serve_a_rotation() -> None:
    w = hooks(Clock())
    headers, body = delivery(TICKET)
    both = {**headers, SIGNATURE: "sha256=" + "f" * 64 + ", " + headers[SIGNATURE]}
    assert w.accept(both, body)
    w = hooks(Clock(), {"secret": "the-new-secret-0123456789", "previous_secret": SECRET})
    assert w.accept(*delivery({**TICKET, "key": "old@example.com"}))  # signed with the previous one
    assert w.accept(*delivery({**TICKET, "key": "new@example.com"}, secret="the-new-secret-0123456789"))


@pytest.mark.parametrize(("events", "says"), [
    ({**TICKET, "source": "billing"}, "source 'billing' takes no webhook events"),
    ({**TICKET, "source": "nowhere"}, "source 'nowhere' takes no webhook events"),
    ({**TICKET, "entity": "accounts"}, "event 0: entity 'accounts' is not one of tickets"),
    ({**TICKET, "change": "exploded"}, "change must be one of changed, created, deleted"),
    ({**TICKET, "key": ""}, "key must be a string"),
    ({**TICKET, "key": ["a"]}, "key must be a string"),
    ({**TICKET, "extra": 1}, "unknown field 'extra'"),
    ({**TICKET, "at": "yesterday"}, "at must be unix seconds or an RFC 3339 time"),
    ([TICKET, {**TICKET, "source": "contact", "entity": "interactions"}],
     "every event of a delivery names the same source"),
    ([], "an event object or a non-empty list"),
    ("tickets", "an event object or a non-empty list"),
])
def test_malformed_events_are_refused_with_what_is_wrong(events: Any, says: str) -> None:
    w = hooks(Clock())
    with pytest.raises(Refused) as err:
        w.accept(*delivery(events))
    assert (err.value.status, err.value.code) == (400, "BAD_EVENT")
    assert says in str(err.value)


def test_a_body_that_is_not_json_and_too_many_events_are_refused() -> None:
    w = hooks(Clock(), max_events=2)
    assert refusal(w, {TIMESTAMP: str(int(NOW)), SIGNATURE: "sha256=00"}, b"{not json") == (400, "BAD_EVENT")
    assert refusal(w, *delivery([TICKET] * 3)) == (400, "BAD_EVENT")


def test_the_memory_of_deliveries_is_bounded_and_forgets_after_the_window() -> None:
    clock = Clock()
    w = hooks(clock, remember=100, replay_window_s=60)
    first = delivery({**TICKET, "key": "k0@example.com"})
    w.accept(*first)
    for i in range(1, 101):
        w.accept(*delivery({**TICKET, "key": f"k{i}@example.com"}))
    assert len(w.seen._at) == 100  # the oldest (k0) forgotten for the newest
    clock.now += 121  # twice the window: every one of them is refused by its timestamp anyway
    assert refusal(w, *delivery({**TICKET, "key": "k5@example.com"})) == (401, "STALE_TIMESTAMP")
    w.accept(*delivery(TICKET, at=clock.now))
    assert len(w.seen._at) == 1


@pytest.mark.parametrize(("source", "change", "where"), [
    ("crm", {"events.notify": {"channel": "crm_changes"}, "events.poll": []},
     "events.notify: needs a PostgreSQL dsn (LISTEN/NOTIFY); declare events.poll for this database"),
    ("crm", {"events.poll": {"entity": "crmm", "table": "customers", "key_column": "cust_no", "updated_column": "u"}},
     "events.poll.0.entity: 'crmm' is not an entity of this source (entities: crm)"),
    ("crm", {"events.poll": {"entity": "crm", "table": "customers; drop", "key_column": "cust_no",
                             "updated_column": "u"}},
     "events.poll.0.table: String should match pattern"),
    ("crm", {"events.notify": {"channel": "x"}, "events.poll": {"entity": "crm", "table": "customers",
             "key_column": "cust_no", "updated_column": "u", "interval_s": 0}},
     "events.poll.0.interval_s: Input should be greater than 0"),
    ("helpdesk", {"events.webhook": {"secret": "short"}},
     "events.webhook.secret: must be at least 16 characters"),
    ("helpdesk", {"events.webhook": {"secret": "x" * 20, "entities": ["tickts"]}},
     "events.webhook.entities.0: 'tickts' is not an entity of this source (entities: tickets)"),
    ("helpdesk", {"events.notify": {"channel": "tickets"}},
     "events.notify and events.poll: for SQL sources"),
    ("helpdesk", {"events.hook": {}}, "events.hook: unknown key"),
])
def test_a_bad_events_declaration_names_the_file_and_key(copy: Path, source: str, change: dict[str, Any],
                                                          where: str) -> None:
    edit(copy / "sources" / f"{source}.yaml", change)
    message = refused(copy / "gateway.yaml")
    assert message.startswith(f"{copy / 'sources' / source}.yaml: {where}"), message


def test_the_secret_comes_from_the_environment(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPDESK_EVENTS_SECRET", "from-the-environment-0123")
    webhook = config.load(copy / "gateway.yaml").sources["helpdesk"].events.webhook  # type: ignore[union-attr]
    assert webhook.secret.get_secret_value() == "from-the-environment-0123"
    assert "from-the-environment" not in repr(webhook)  # never in a log line or an error


def test_check_says_how_each_source_tells_of_its_changes_and_hides_the_secrets() -> None:
    done = check()
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ") and len(line.split()) > 4]
    rows = {line.split()[0]: line for line in lines}
    assert " webhook " in rows["helpdesk"] and " webhook " in rows["contact"]
    assert " poll customers.updated_at 0.5 s " in rows["crm"] and " poll xref.updated_at 0.5 s " in rows["crosswalk"]
    assert "  -  " in rows["billing"]  # its TTLs only
    assert "events-secret" not in done.stdout
