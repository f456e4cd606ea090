"""The process's graph (schema/graph.py): every declaration file's `types:` and `enums:` (shared enums in
sources/_shared.yaml, not a source) built once; the declared types are the reference's
(tests/test_declared_types.py), one set of classes serves every schema, and the configuration refuses a
file whose types are not the ones built."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

import config
from schema import graph, registered
from schema.declared import DeclarationError, Declarations
from server.app import build_schema
from tests.harness import ROOT
from tests.test_declared_types import DECLARATIONS


def test_the_declaration_files_declare_the_reference_types() -> None:
    reference = Declarations.load(DECLARATIONS)
    built = graph.GRAPH.declarations
    assert built.enums == reference.enums
    # the reference predates conditions (types.T.conditions, compared in tests/test_attached.py)
    assert {n: t.model_copy(update={"conditions": {}}) for n, t in built.types.items()} == reference.types
    for name, t in built.types.items():  # the field order is the SDL's
        assert list(t.fields) == list(reference.types[name].fields), name


def test_each_type_is_declared_in_its_systems_file() -> None:
    def declared(file: str) -> set[str]:
        raw = yaml.safe_load((ROOT / "sources" / file).read_text())
        return set(raw.get("types", {})) | set(raw.get("enums", {}))

    assert declared("_shared.yaml") == {"Channel"}
    assert declared("billing.yaml") == {"BillingAccount", "Invoice", "AccountStatus", "InvoiceStatus"}
    assert declared("crosswalk.yaml") == {"Identity"}
    assert {"CrmRecord", "Address", "Consent", "Preferences", "Segment"} == declared("crm.yaml")


def test_one_graph_serves_every_schema_and_pickles() -> None:
    a, b = build_schema(), build_schema()
    for name in ("BillingAccount", "Order", "Interaction"):
        assert a._schema.type_map[name] is not None
        assert a.get_type_by_name(name).origin is b.get_type_by_name(name).origin is graph.GRAPH.types[name]
    Identity = graph.record("Identity")
    assert registered.Identity is Identity
    back = pickle.loads(pickle.dumps(Identity("crm", "CRM-1")))
    assert type(back) is Identity and back == Identity("crm", "CRM-1")
    assert graph.GRAPH.finished and "CrmRecord" not in graph.GRAPH.types


def test_a_shared_file_is_not_a_source() -> None:
    cfg = config.load(ROOT / "gateway.yaml")
    assert "_shared" not in cfg.sources and len(cfg.sources) == 12
    assert "_shared" not in config.inline(ROOT / "gateway.yaml")["sources"]



def _refused(path: Path) -> str:
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    return str(err.value)


def test_a_type_declared_otherwise_than_built_is_refused_naming_file_and_key(copy: Path) -> None:
    billing = copy / "sources" / "billing.yaml"
    raw = yaml.safe_load(billing.read_text())
    raw["types"]["Invoice"]["description"] = "Something else."
    billing.write_text(yaml.safe_dump(raw))  # sorted keys: the field order alone is no difference
    message = _refused(copy / "gateway.yaml")
    assert message.startswith(f"{billing}: types.Invoice: not as the gateway's types were built"), message


def test_a_bad_type_in_a_file_names_file_and_key(copy: Path) -> None:
    shared = copy / "sources" / "_shared.yaml"
    shared.write_text(shared.read_text().replace("values: [WEB", "valuez: [WEB"))
    message = _refused(copy / "gateway.yaml")
    assert message == f"{shared}: enums.Channel.values: Field required", message


def test_a_name_declared_twice_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: rest\ntypes: {Thing: {fields: {x: Int}}}\n")
    (tmp_path / "b.yaml").write_text("types: {Thing: {fields: {y: Int}}}\n")
    with pytest.raises(DeclarationError, match=r"^b.yaml: types.Thing: already declared in a.yaml$"):
        graph.load_declarations(tmp_path)
    (tmp_path / "b.yaml").unlink()
    (tmp_path / "_c.yaml").write_text("kind: rest\n")
    with pytest.raises(DeclarationError, match=r"^_c.yaml: kind: a shared file"):
        graph.load_declarations(tmp_path)
