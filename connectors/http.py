"""The HTTP side shared by the rest, graphql and xml connectors: one aiohttp session."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import aiohttp
import orjson

from connectors.base import SOURCE_BAD_RESPONSE, SOURCE_UNAVAILABLE, Connector, Rejection, SourceConfig
from telemetry.tracing import outgoing

_RETRYABLE = (502, 503, 504)


def new_session(total_connections: int = 256) -> aiohttp.ClientSession:
    """One keep-alive session for every HTTP source of the gateway process."""
    connector = aiohttp.TCPConnector(limit=total_connections, limit_per_host=64, keepalive_timeout=30,
                                     ttl_dns_cache=300)
    # No cookie jar: sources are called with explicit credentials, never by session state.
    return aiohttp.ClientSession(connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                                 cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=None))


def _with(params: Any, extra: dict[str, str]) -> Any:
    """A request's query parameters (a mapping or a list of pairs) plus `extra`."""
    if params is None:
        return dict(extra)
    if isinstance(params, dict):
        return {**params, **extra}
    return [*list(params.items() if hasattr(params, "items") else params), *extra.items()]


class HttpConnector(Connector):
    """Requests against one source's base URL with its headers and concurrency limit."""

    def __init__(self, config: SourceConfig, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.base = config.url.rstrip("/")
        self.headers = {**config.headers, **(config.auth.headers() if config.auth else {})}
        self.auth_params = config.auth.params() if config.auth else {}  # an API key in the query
        super().__init__(config)  # compiles the declared entities, which may use the above

    async def request(self, method: str, path: str, *, not_found: Collection[int] = (),
                      headers: dict[str, str] | None = None, rejects: Sequence[Rejection] = (),
                      **kw: Any) -> bytes | None:
        """The body of a 2xx answer; None for a status of `not_found` (the source does not know the
        resource: no failure); a SourceRejected for a 4xx answer one of `rejects` declares the client's
        mistake; a SourceError otherwise."""
        headers = outgoing({**self.headers, **headers} if headers else self.headers)  # W3C traceparent
        if self.auth_params:
            kw["params"] = _with(kw.get("params"), self.auth_params)
        return await self.guarded(lambda: self._once(method, path, not_found, headers, rejects, kw))

    async def _once(self, method: str, path: str, not_found: Collection[int], headers: dict[str, str],
                    rejects: Sequence[Rejection], kw: dict[str, Any]) -> bytes | None:
        try:
            async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
                if resp.status in not_found:
                    return None
                body = await self._read_capped(resp)
                if resp.status >= 400:
                    for rejection in rejects:
                        if rejection.matches(resp.status, body):
                            raise self.rejected(rejection, body[:200].decode(errors="replace"))
                    code = SOURCE_UNAVAILABLE if resp.status >= 500 or resp.status in (408, 429) \
                        else SOURCE_BAD_RESPONSE
                    raise self.error(code, f"answered HTTP {resp.status}", body[:200].decode(errors="replace"),
                                     retryable=resp.status in _RETRYABLE)
                return body
        except aiohttp.ClientError as exc:
            raise self.error(SOURCE_UNAVAILABLE, "connection failed", repr(exc), retryable=True) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.config.max_body_bytes
        if resp.content_length is not None:
            if resp.content_length > cap:
                raise self.error(SOURCE_BAD_RESPONSE, "response too large", f"{resp.content_length} bytes")
            return await resp.read()  # the length is known and allowed: one read, no chunk loop
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > cap:
                raise self.error(SOURCE_BAD_RESPONSE, "response too large", f"over {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self, method: str, path: str, *, not_found: Collection[int] = (), **kw: Any) -> Any:
        """A JSON answer, parsed; malformed JSON is a bad response."""
        body = await self.request(method, path, not_found=not_found, **kw)
        if body is None:
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.error(SOURCE_BAD_RESPONSE, "invalid JSON", body[:200].decode(errors="replace")) from None
