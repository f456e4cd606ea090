"""Legacy XML-over-HTTP (SOAP-style envelope) sources.

A declared entity is an envelope template (the Body's content, with `{keys}...{key}...{/keys}` repeated
once per key), a SOAPAction, and an ElementPath to the records in the answer's Body. Each record element
becomes a dict for the mapping (`element_dict`): its attributes and its child elements' text by local
name (an empty element is null); a child with children or attributes is a dict in turn; a tag repeated,
or listed in `lists`, is a list.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from connectors.base import SOURCE_BAD_RESPONSE, Fetcher
from connectors.declaration import Entity, assemble
from connectors.http import HttpConnector

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def envelope(body: str, namespaces: dict[str, str]) -> str:
    ns = "".join(f' xmlns:{p}="{escape(u)}"' for p, u in namespaces.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_NS}"{ns}>'
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")


def element_dict(el: ElementTree.Element, lists: Collection[str] = ()) -> dict[str, Any]:
    """An element as a dict: attributes and children by local name (text stripped, empty -> None)."""
    out: dict[str, Any] = {k.rpartition("}")[2]: v for k, v in el.attrib.items()} if el.attrib else {}
    repeated: set[str] = set()
    for child in el:
        tag = child.tag.rpartition("}")[2] if isinstance(child.tag, str) else None
        if tag is None:  # a comment or processing instruction
            continue
        if len(child) or child.attrib:
            value: Any = element_dict(child, lists)
            if child.attrib and not len(child) and child.text and child.text.strip():
                value["#text"] = child.text.strip()
        else:
            value = (child.text or "").strip() or None
        if tag in lists:
            out.setdefault(tag, []).append(value)
        elif tag in repeated:
            out[tag].append(value)
        elif tag in out:
            out[tag] = [out[tag], value]
            repeated.add(tag)
        else:
            out[tag] = value
    return out


class XmlConnector(HttpConnector):
    def declared(self, name: str, e: Entity) -> Fetcher:
        before, each, after = re.split(r"\{/?keys\}", e.envelope or "", maxsplit=2)
        head, tail = each.split("{key}", 1)
        answer = assemble(e, self.mapper(name, e), self.name)
        path = e.path or str(self.config.options.get("path", "/"))
        action, namespaces, elements, lists = e.action, dict(e.namespaces), e.elements or "", frozenset(e.lists)
        body_tag = f"{{{SOAP_NS}}}Body"
        call = self.call

        async def fetch(_: Any, keys: list[str]) -> dict[str, Any]:
            body = before + "".join(f"{head}{escape(k)}{tail}" for k in keys) + after
            root = await call(path, action, body, namespaces)
            found = root.find(body_tag)
            assert found is not None  # call() checked it is there
            return answer([element_dict(el, lists) for el in found.iterfind(elements, namespaces)], keys)
        return fetch

    async def call(self, path: str, action: str, body: str, namespaces: dict[str, str]) -> ElementTree.Element:
        """POST one envelope; the parsed answer's root. A SOAP fault or broken XML is a bad response."""
        raw = await self.request("POST", path, data=envelope(body, namespaces).encode(),
                                 headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action})
        try:
            root = ElementTree.fromstring(raw or b"")
        except ElementTree.ParseError as exc:
            raise self.error(SOURCE_BAD_RESPONSE, "invalid XML", repr(exc)) from None
        if root.tag != f"{{{SOAP_NS}}}Envelope" or root.find(f"{{{SOAP_NS}}}Body") is None:
            raise self.error(SOURCE_BAD_RESPONSE, "not a SOAP envelope", (raw or b"")[:200].decode(errors="replace"))
        fault = root.find(f".//{{{SOAP_NS}}}Fault")
        if fault is not None:
            raise self.error(SOURCE_BAD_RESPONSE, "SOAP fault", ElementTree.tostring(fault)[:300].decode())
        return root
