"""REST/JSON sources: the shared HTTP connector running each declared entity's fetch and action.

A declared entity (connectors/declaration.py) becomes, once at start, one fetch function: its request
template, pagination, records path, key and compiled mapping bound as closure constants. A batch
request asks for every key in one call (per page); a per-key request makes one call per key, all at
once, bounded by the source's concurrency limit (the bulkhead in `guarded`). A declared action
(connectors/actions.py) becomes one request built from its arguments, its answer mapped by an entity's
mapping.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urljoin

from connectors.actions import Action, Answer, Args, compile_path, compile_value
from connectors.base import Fetcher, Rejection, Write
from connectors.declaration import (
    KEY,
    KEYS,
    MAX_PAGES,
    CursorPages,
    Entity,
    NextLink,
    OffsetPages,
    PageNumbers,
    getter,
    template,
)
from connectors.http import HttpConnector
from connectors.mapping import Mapper

# (path, query parameters or None, JSON body or None) -> the records of every page, or None: not found
Pages = Callable[[str, Any, Any], Awaitable[list[Any] | None]]


class RestConnector(HttpConnector):
    """A REST source: its declared entities (compiled by `declared`) and actions (by `action`)."""

    def declared(self, name: str, e: Entity) -> Fetcher:
        """The fetch of one declared entity, compiled."""
        mapper: Mapper = self.mapper(name, e)
        if e.value is not None:
            value = getter(e.value)
            mapper = lambda r, p=None: value(r)  # noqa: E731
        req = e.request
        assert req is not None
        marker = KEY if req.per_key else KEYS
        pages = self.pages(e)
        params = _params(req.params, marker, req.join)
        body = template(req.body, marker)
        body_of = body if body is not None else (lambda _: req.body)

        if req.per_key:
            if "{key}" in req.path:
                head, tail = req.path.split("{key}")
                path_of: Callable[[str], str] = lambda key: head + quote(key, safe="@") + tail
            else:
                path_of = lambda _: req.path
            many = e.many

            async def one(key: str) -> Any:
                found = await pages(path_of(key), params(key), body_of(key))
                if found is None:
                    return None
                return [mapper(r) for r in found] if many else mapper(found)

            async def fetch_each(_: Any, keys: list[str]) -> dict[str, Any]:
                # No batch endpoint: one call per key, all at once (the connector's limit bounds them).
                results = [await one(keys[0])] if len(keys) == 1 else await asyncio.gather(*(one(k) for k in keys))
                return {k: r for k, r in zip(keys, results) if r is not None}
            return fetch_each

        path = req.path
        if e.group is not None:
            group_key, group_records = getter(e.group.key), getter(e.group.records)

            async def fetch_groups(_: Any, keys: list[str]) -> dict[str, Any]:
                items = await pages(path, params(keys), body_of(keys))
                if items is None:
                    return {}
                return {group_key(g): [mapper(r, g) for r in group_records(g)] for g in items}
            return fetch_groups
        key = getter(e.key)
        if e.many:
            async def fetch_many(_: Any, keys: list[str]) -> dict[str, Any]:
                items = await pages(path, params(keys), body_of(keys))
                out: dict[str, list[Any]] = defaultdict(list)
                for r in items or ():
                    out[key(r)].append(mapper(r))
                return out
            return fetch_many

        async def fetch_batch(_: Any, keys: list[str]) -> dict[str, Any]:
            items = await pages(path, params(keys), body_of(keys))
            if items is None:
                return {}
            return {key(r): mapper(r) for r in items}
        return fetch_batch

    def action(self, name: str, a: Action) -> Write:
        """One declared write: a request built from the action's arguments; a declared rejection is the
        caller's error (SourceRejected), never a verdict on the source."""
        req = a.request
        assert req is not None
        method, path = req.method, compile_path(req.path)
        params, headers = compile_value(req.params), compile_value(req.headers)
        body = compile_value(req.body) if req.body is not None else (lambda _: None)
        rejects = tuple(Rejection(r.status, r.code, r.message, r.body_contains) for r in a.rejects)
        read = self.answer(a.answer)
        json = self.json

        async def write(args: Args) -> Any:
            query = {k: v for k, v in params(args).items() if v is not None}
            sent = {k: str(v) for k, v in headers(args).items() if v is not None}
            found = await json(method, path(args), params=query or None, json=body(args), headers=sent or None,
                               rejects=rejects)
            return read(found, args)
        return write

    def answer(self, answer: Answer | None) -> Callable[[Any, Args], Any]:
        """What a write returns: the answer, or its record mapped by the declared entity's mapping."""
        if answer is None:
            return lambda found, _: found
        mapper: Mapper = self.mappers[answer.entity]
        at = getter(answer.path)
        if answer.parent is None:
            return lambda found, _: mapper(at(found))
        parent = compile_value(answer.parent)
        return lambda found, args: mapper(at(found), parent(args))

    def pages(self, e: Entity) -> Pages:
        """The calls of one request: one, or one per page, each page's records appended (for a per-key
        request without `many`, the one answer's record)."""
        method, not_found, records = e.request.method, tuple(e.not_found), getter(e.records)
        json = self.json
        p = e.pagination
        if p is None:
            async def single(path: str, params: Any, body: Any) -> list[Any] | None:
                answer = await json(method, path, params=params, json=body, not_found=not_found)
                return None if answer is None else records(answer)
            return single
        given = p.page_size or self.config.options.get("page_size")
        size = int(given) if given is not None else None
        sized = {p.size_param: size} if p.size_param and size is not None else {}

        if isinstance(p, CursorPages):
            cursor, has_more, param = _lenient(p.cursor), getter(p.has_more) if p.has_more else None, p.param

            async def by_cursor(path: str, params: Any, body: Any) -> list[Any] | None:
                out: list[Any] = []
                at: Any = None
                for _ in range(MAX_PAGES):
                    page = await json(method, path, params=_merge(params, {**sized, **({param: at} if at else {})}),
                                      json=body, not_found=not_found)
                    if page is None:
                        return None
                    out.extend(records(page))
                    at = cursor(page) if has_more is None or has_more(page) else None
                    if not at:
                        return out
                raise ValueError(f"more than {MAX_PAGES} pages")
            return by_cursor

        if isinstance(p, OffsetPages):
            total, offset_param, size_param = getter(p.total) if p.total else None, p.offset_param, p.size_param
            assert size is not None

            async def by_offset(path: str, params: Any, body: Any) -> list[Any] | None:
                out: list[Any] = []
                offset = 0
                for _ in range(MAX_PAGES):
                    page = await json(method, path, params=_merge(params, {offset_param: offset, size_param: size}),
                                      json=body, not_found=not_found)
                    if page is None:
                        return None
                    got = records(page)
                    out.extend(got)
                    offset += size
                    if (offset >= int(total(page)) if total is not None else len(got) < size) or not got:
                        return out
                raise ValueError(f"more than {MAX_PAGES} pages")
            return by_offset

        if isinstance(p, PageNumbers):
            pages_total, param, first = getter(p.total_pages) if p.total_pages else None, p.param, p.first

            async def by_number(path: str, params: Any, body: Any) -> list[Any] | None:
                out: list[Any] = []
                for n in range(first, first + MAX_PAGES):
                    page = await json(method, path, params=_merge(params, {**sized, param: n}), json=body,
                                      not_found=not_found)
                    if page is None:
                        return None
                    got = records(page)
                    out.extend(got)
                    if not got or (n - first + 1 >= int(pages_total(page)) if pages_total is not None
                                   else size is not None and len(got) < size):
                        return out
                raise ValueError(f"more than {MAX_PAGES} pages")
            return by_number

        assert isinstance(p, NextLink)
        link = _lenient(p.next)

        async def by_link(path: str, params: Any, body: Any) -> list[Any] | None:
            out: list[Any] = []
            query = _merge(params, sized)
            for _ in range(MAX_PAGES):
                page = await json(method, path, params=query, json=body, not_found=not_found)
                if page is None:
                    return None
                out.extend(records(page))
                nxt = link(page)
                if not nxt:
                    return out
                path, query = self.within(path, str(nxt)), None
            raise ValueError(f"more than {MAX_PAGES} pages")
        return by_link

    def within(self, current: str, link: str) -> str:
        """A next-page link (absolute, host-relative or relative) as a path under the source's URL;
        a link elsewhere is refused (the source's credentials go only to the source)."""
        url = urljoin(self.base + current, link)
        if not url.startswith(self.base + "/") and url != self.base:
            raise ValueError(f"next link {link!r} is not under the source's URL")
        return url[len(self.base):]


def _params(params: dict[str, Any], marker: str, join: str | None) -> Callable[[Any], Any]:
    """The query parameters of a call, as a function of its keys (or key)."""
    static = {k: v for k, v in params.items() if v != marker}
    keyed = [k for k, v in params.items() if v == marker]
    if not keyed:
        return lambda _: static or None
    (name,) = keyed
    if marker == KEY:
        return lambda key: {**static, name: key}
    if join is not None:
        return lambda keys: {**static, name: join.join(keys)}
    return lambda keys: [*static.items(), *((name, k) for k in keys)]  # the parameter repeated


def _merge(params: Any, extra: dict[str, Any]) -> Any:
    if not params:
        return extra or None
    if isinstance(params, dict):
        return {**params, **extra}
    return [*params, *extra.items()]


def _lenient(path: str) -> Callable[[Any], Any]:
    """A getter for which a missing step is None (a last page may leave its next cursor or link out)."""
    get = getter(path)

    def read(v: Any) -> Any:
        try:
            return get(v)
        except KeyError:
            return None
    return read
