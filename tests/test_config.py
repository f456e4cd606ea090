"""The configuration: one declaration file per source, pydantic-checked, errors in one line naming the
file and the key path; `gateway.py check` and `check --ping`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import config
from tests.harness import ROOT, Estate, gateway_config

SOURCES = ("crosswalk", "crm", "shop", "billing", "helpdesk", "contact", "marketing", "loyalty", "warranty",
           "shipping", "staff", "analytics")



def edit(path: Path, change: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    """Set top-level keys of a YAML file (a dotted key sets a nested one), drop others."""
    raw = yaml.safe_load(path.read_text()) or {}
    for key, value in change.items():
        *parents, last = key.split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    for key in drop:
        raw.pop(key, None)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def refused(path: Path) -> str:
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_the_real_config_declares_every_source_in_its_own_file() -> None:
    cfg = config.load(ROOT / "gateway.yaml")
    assert sorted(cfg.sources) == sorted(SOURCES)
    assert all(Path(ROOT / "sources" / f"{n}.yaml").exists() for n in SOURCES)
    assert "sources" not in yaml.safe_load((ROOT / "gateway.yaml").read_text())  # none inline
    billing = cfg.sources["billing"]
    assert (billing.kind, billing.system, billing.ttl_s) == ("rest", "billing", {"accounts": 60.0})
    assert billing.headers == {"X-Api-Key": "demo-billing-key"}
    assert cfg.sources["helpdesk"].concurrency == 32 and cfg.sources["helpdesk"].options == {"page_size": 100}
    assert cfg.sources["crm"].dsn.endswith("/crm.sqlite") and cfg.files["crm"].endswith("sources/crm.yaml")


BAD = [
    ("billing", {"concurrency": 0}, "concurrency", "greater than or equal to 1"),
    ("billing", {"timeout_s": -1}, "timeout_s", "greater than 0"),
    ("billing", {"retries": -3}, "retries", "greater than or equal to 0"),
    ("billing", {"headers": 5}, "headers", "valid dictionary"),
    ("billing", {"queue": -1}, "queue", "greater than or equal to 0"),
    ("billing", {"circuit_failures": 0}, "circuit_failures", "greater than or equal to 1"),
    ("billing", {"circuit_reset_s": 0}, "circuit_reset_s", "greater than 0"),
    ("billing", {"max_body_bytes": 0}, "max_body_bytes", "greater than or equal to 1"),
    ("billing", {"ttl_s": {"accounts": 0}}, "ttl_s.accounts", "greater than 0"),
    ("billing", {"negative_ttl_s": -2}, "negative_ttl_s", "greater than 0"),
    ("billing", {"concurrency": "many"}, "concurrency", "valid integer"),
    ("billing", {"kind": "soap"}, "kind", "'sql', 'rest', 'graphql' or 'xml', got 'soap'"),
    ("billing", {"concurency": 4}, "concurency", "unknown key"),
    ("crm", {"options": [1]}, "options", "valid dictionary"),
]


@pytest.mark.parametrize(("source", "change", "where", "expected"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_a_bad_source_value_names_the_file_and_key(copy: Path, source: str, change: dict[str, Any], where: str,
                                                   expected: str) -> None:
    edit(copy / "sources" / f"{source}.yaml", change)
    message = refused(copy / "gateway.yaml")
    assert message.startswith(str(copy / "sources" / f"{source}.yaml") + f": {where}: "), message
    assert expected in message, message


GATEWAY_BAD = [
    ({"cache.max_entries": -5}, "cache.max_entries", "greater than or equal to 1"),
    ({"cache.default_ttl_s": 0}, "cache.default_ttl_s", "greater than 0"),
    ({"cache.stale_grace_s": -1}, "cache.stale_grace_s", "greater than or equal to 0"),
    ({"cache.enabled": "maybe"}, "cache.enabled", "valid boolean"),
    ({"cache.max_entires": 5}, "cache.max_entires", "unknown key"),
    ({"gateway.max_ids": 0}, "gateway.max_ids", "greater than or equal to 1"),
    ({"gateway.request_timeout_s": -1}, "gateway.request_timeout_s", "greater than 0"),
    ({"gateway.timeout": 1}, "gateway.timeout", "unknown key"),
    ({"limits.max_body_bytes": 0}, "limits.max_body_bytes", "greater than or equal to 1024"),
    ({"apq.max_documents": 0}, "apq.max_documents", "greater than or equal to 1"),
    ({"insights.cross_sell.suggestions": -1}, "insights.cross_sell.suggestions", "greater than or equal to 0"),
    ({"insights.cross_sell.ticket_priority_at_least": "sometimes"}, "insights.cross_sell.ticket_priority_at_least",
     "'low', 'normal', 'high' or 'urgent'"),
    ({"insights.value.colour": "red"}, "insights.value.colour", "unknown key"),
    ({"insights.value.tiers": [{"tier": "TOP", "min_value": 1}]}, "insights.value.tiers.0.min_orders_12m",
     "Field required"),
    ({"cachee": {}}, "cachee", "unknown section"),
    ({"gateway.identity": "nowhere"}, "gateway.identity", "source 'nowhere' is not declared"),
    ({"gateway.sources": "missing"}, "gateway.sources", "is not a folder"),
]


@pytest.mark.parametrize(("change", "where", "expected"), GATEWAY_BAD, ids=[b[1] for b in GATEWAY_BAD])
def test_a_bad_gateway_value_names_the_file_and_key(copy: Path, change: dict[str, Any], where: str,
                                                    expected: str) -> None:
    edit(copy / "gateway.yaml", change)
    message = refused(copy / "gateway.yaml")
    assert message.startswith(f"{copy / 'gateway.yaml'}: {where}: "), message
    assert expected in message, message


def test_strings_from_the_environment_become_numbers_and_booleans(copy: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    edit(copy / "sources" / "helpdesk.yaml", {"concurrency": "${HELPDESK_CONCURRENCY:-8}",
                                              "timeout_s": "${HELPDESK_TIMEOUT_S:-1.5}"})
    edit(copy / "gateway.yaml", {"cache.enabled": "${CACHE_ON:-true}"})
    cfg = config.load(copy / "gateway.yaml")
    assert (cfg.sources["helpdesk"].concurrency, cfg.sources["helpdesk"].timeout_s, cfg.cache.enabled) == (8, 1.5, True)
    monkeypatch.setenv("HELPDESK_CONCURRENCY", "40")
    monkeypatch.setenv("CACHE_ON", "off")
    cfg = config.load(copy / "gateway.yaml")
    assert (cfg.sources["helpdesk"].concurrency, cfg.cache.enabled) == (40, False)
    monkeypatch.setenv("HELPDESK_CONCURRENCY", "0")
    assert refused(copy / "gateway.yaml").endswith("helpdesk.yaml: concurrency: Input should be greater than or "
                                                   "equal to 1")


def test_every_url_and_dsn_can_be_set_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = config.load(ROOT / "gateway.yaml").sources
    assert defaults["billing"].url == "http://127.0.0.1:9101"
    for name, src in defaults.items():
        raw = (ROOT / "sources" / f"{name}.yaml").read_text()
        assert f"${{{name.upper()}_{'DSN' if src.kind == 'sql' else 'URL'}:-" in raw, name
        monkeypatch.setenv(f"{name.upper()}_{'DSN' if src.kind == 'sql' else 'URL'}", f"scheme://{name}.internal")
    overridden = config.load(ROOT / "gateway.yaml").sources
    for name, src in overridden.items():
        assert (src.dsn if src.kind == "sql" else src.url) == f"scheme://{name}.internal"


def test_a_missing_variable_names_the_file_and_key(copy: Path) -> None:
    edit(copy / "sources" / "billing.yaml", {"url": "${NO_SUCH_BILLING_URL}"})
    assert refused(copy / "gateway.yaml") == (f"{copy / 'sources' / 'billing.yaml'}: url: environment variable "
                                              "NO_SUCH_BILLING_URL is not set (and has no default)")


def test_url_or_dsn_required_by_kind(copy: Path) -> None:
    (copy / "sources" / "billing.yaml").write_text("kind: rest\n")
    assert refused(copy / "gateway.yaml").endswith("billing.yaml: url: required for kind rest")
    (copy / "sources" / "shop.yaml").write_text("kind: sql\nurl: http://x\n")
    (copy / "sources" / "billing.yaml").write_text("kind: rest\nurl: http://x\n")
    assert refused(copy / "gateway.yaml").endswith("shop.yaml: dsn: required for kind sql")


def test_a_source_is_declared_in_one_place(copy: Path) -> None:
    edit(copy / "gateway.yaml", {"sources": {"billing": {"kind": "rest", "url": "http://elsewhere"}}})
    message = refused(copy / "gateway.yaml")
    assert message.startswith(f"{copy / 'sources' / 'billing.yaml'}: source 'billing' is also defined under "
                              "`sources:`"), message
    # Inline alone is fine (the tests' configs), and adds to the folder's.
    edit(copy / "gateway.yaml", {"sources": {"billing_eu": {"kind": "rest", "url": "http://eu", "system": "billing",
                                                            "timeout_s": "${X_NOT_SET:-3}"}}})
    cfg = config.load(copy / "gateway.yaml")
    assert cfg.sources["billing_eu"].system == "billing" and cfg.sources["billing_eu"].timeout_s == 3.0
    assert cfg.files["billing_eu"] == "" and len(cfg.sources) == len(SOURCES) + 1


def test_a_name_inside_a_declaration_and_bad_yaml_are_refused(copy: Path) -> None:
    edit(copy / "sources" / "staff.yaml", {"name": "people"})
    assert "staff.yaml: name: not a setting" in refused(copy / "gateway.yaml")
    (copy / "sources" / "staff.yaml").write_text("kind: rest\nurl: [unclosed\n")
    assert "staff.yaml: line 3: not valid YAML" in refused(copy / "gateway.yaml")
    (copy / "sources" / "staff.yaml").write_text("- kind: rest\n")
    assert "staff.yaml: expected the source's settings" in refused(copy / "gateway.yaml")


def test_parse_of_a_dict_names_the_key_path() -> None:
    raw = config.inline(ROOT / "gateway.yaml")
    assert "sources" not in raw["gateway"] and sorted(raw["sources"]) == sorted(SOURCES)
    assert config.parse(raw).sources["billing"].url == "http://127.0.0.1:9101"
    raw["sources"]["billing"]["concurrency"] = 0
    with pytest.raises(config.ConfigError, match=r"^sources\.billing\.concurrency: Input should be greater than "
                                                 r"or equal to 1$"):
        config.parse(raw)


# ---- over the command line


def check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "gateway.py", "check", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=timeout)


def test_check_summarises_the_real_config() -> None:
    done = check()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("gateway.yaml: valid") and "sources (12):" in out
    for name in SOURCES:
        assert f"sources/{name}.yaml" in out and f"\n  {name} " in out
    assert "identities, match, lookup" in out and "http://127.0.0.1:9101" in out
    for field in ("id: ID!", "identities: [Identity!]!", "crossSell: CrossSell", "timeline: TimelineConnection"):
        assert field in out
    assert "\n  agent " in out and "\n  pos " in out
    assert "demo-billing-key" not in out and "demo-marketing-token" not in out and "X-Api-Key: ***" in out


def test_check_names_the_broken_file_and_key(copy: Path) -> None:
    edit(copy / "sources" / "billing.yaml", {"concurrency": 0})
    done = check("--config", str(copy / "gateway.yaml"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"config error: {copy / 'sources' / 'billing.yaml'}: concurrency: Input should be "
                                   "greater than or equal to 1")
    edit(copy / "sources" / "billing.yaml", {"concurrency": 4, "mapping": "nonesuch"})
    done = check("--config", str(copy / "gateway.yaml"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "billing.yaml: mapping: unknown key" in done.stderr


def test_check_hides_credentials(copy: Path) -> None:
    edit(copy / "sources" / "crm.yaml", {"dsn": "postgresql+asyncpg://cg:s3cret-pw@db.internal:5432/crm"})
    done = check("--config", str(copy / "gateway.yaml"))
    assert done.returncode == 0, done.stderr
    assert "s3cret-pw" not in done.stdout and "postgresql+asyncpg://cg:***@db.internal:5432/crm" in done.stdout


def test_check_ping_reports_each_source(estate: Estate, tmp_path: Path) -> None:
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(gateway_config(estate)))
    done = check("--config", str(path), "--ping", "--timeout", "2")
    assert done.returncode == 0, done.stderr
    table = done.stdout[done.stdout.index("ping ("):]
    for name in SOURCES:
        assert any(line.split()[:2] == [name, "up"] and line.split()[3] == "ms" for line in table.splitlines()), table
    assert "all 12 sources up" in table
    estate.faults("billing", {"down": True})
    done = check("--config", str(path), "--ping", "--timeout", "2")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    rows = {line.split()[0]: line for line in done.stdout[done.stdout.index("ping ("):].splitlines()[2:]}
    assert rows["billing"].split()[1] == "DOWN" and "SOURCE_UNAVAILABLE" in rows["billing"], rows
    assert all(rows[n].split()[1] == "up" for n in SOURCES if n != "billing"), rows
    assert "1 of 12 sources down: billing" in done.stderr
