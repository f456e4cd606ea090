"""Who is calling: bearer JWTs (PyJWT) to a principal with a role.

HS256 tokens are checked with the configured secret; RS256/ES256 tokens with the identity provider's
key set (`jwks_url`), fetched with aiohttp, cached, and refetched on an unknown `kid` at most once per
`jwks_min_refetch_s`. The algorithm family picks the key, so an RS256 public key can never be used as
an HS256 secret. A verified token is remembered (bounded), so a client reusing one pays a dict lookup
and an expiry check per request, not a signature check (~30 us with HS256, more with RS256).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from server.settings import AuthSettings, RoleSettings

log = logging.getLogger("customer_graph.auth")
VERIFIED_MAX = 10_000  # remembered tokens; a flood of distinct tokens only evicts, never grows memory
HOW_TO = ("send 'Authorization: Bearer <JWT>' with a role in its roles claim; "
          "for the demo, `python gateway.py token --role agent` prints one")


class AuthError(Exception):
    """The caller is not authenticated (401) or not allowed at all (403)."""

    def __init__(self, message: str, reason: str, code: str = "UNAUTHENTICATED", status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason  # one of REASONS, for the metrics (the message is for the client)
        self.code, self.status = code, status


# Why a caller was refused, as a bounded metrics label (telemetry/metrics.py).
REASONS = ("missing", "malformed", "bad_algorithm", "unknown_key", "bad_signature", "expired", "not_yet_valid",
           "wrong_audience", "wrong_issuer", "missing_claim", "unknown_role", "not_registered")


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: str
    policy: RoleSettings
    expires_at: float | None = None  # the token's exp plus the leeway: a long-lived subscription ends then


class Jwks:
    """The identity provider's signing keys, by `kid`."""

    def __init__(self, url: str, settings: AuthSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self.settings, self.clock = url, settings, clock
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = -1e18
        self._fetching: asyncio.Future[None] | None = None

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = self.clock()
        stale = now - self.fetched_at > self.settings.jwks_cache_s
        unknown = kid not in self.keys and now - self.fetched_at >= self.settings.jwks_min_refetch_s
        if stale or unknown:
            await self._refresh()
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        found = self.keys.get(kid or "")
        if found is None:
            raise AuthError(f"the token's signing key {kid!r} is not in the identity provider's key set", "unknown_key")
        return found

    async def _refresh(self) -> None:
        """One fetch at a time; concurrent callers wait for it."""
        if self._fetching is not None:
            await asyncio.shield(self._fetching)
            return
        self._fetching = asyncio.get_running_loop().create_future()
        try:
            self.keys = await self._fetch()
        except Exception as exc:  # noqa: BLE001 - keep the old keys; the token then fails with a clear reason
            log.warning("JWKS fetch failed: %r", exc)
        finally:
            self.fetched_at = self.clock()  # failed fetches are rate-limited too
            self._fetching.set_result(None)
            self._fetching = None

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.url) as resp:
            resp.raise_for_status()
            body = await resp.json(content_type=None)
        keyset = jwt.PyJWKSet.from_dict(body)
        return {k.key_id or "": k for k in keyset.keys}


class Authenticator:
    def __init__(self, settings: AuthSettings, roles: dict[str, RoleSettings],
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.roles, self.clock = settings, roles, clock
        self.jwks = Jwks(settings.jwks_url, settings) if settings.jwks_url else None
        self._verified: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()  # token -> (who, nbf, exp)
        anonymous = settings.anonymous_role
        self.anonymous = Principal("anonymous", anonymous, roles[anonymous]) if anonymous else None

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            if self.anonymous is not None:
                return self.anonymous
            raise AuthError(f"authentication required: {HOW_TO}", "missing")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(f"the Authorization header must be 'Bearer <JWT>': {HOW_TO}", "malformed")
        hit = self._verified.get(token)
        if hit is not None:
            principal, nbf, exp = hit
            now, leeway = self.clock(), self.settings.leeway_s
            if now > exp + leeway:
                del self._verified[token]
                raise AuthError("the token has expired; get a new one", "expired")
            if now < nbf - leeway:
                raise AuthError("the token is not valid yet", "not_yet_valid")
            return principal
        claims = await self._verify(token)
        principal = self._principal(claims)
        self._verified[token] = (principal, float(claims.get("nbf", 0)), float(claims["exp"]))
        if len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(f"the bearer token is not a JWT: {HOW_TO}", "malformed") from None
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            accepted = ", ".join(self.settings.algorithms)
            raise AuthError(f"token algorithm {alg!r} is not accepted (accepted: {accepted})", "bad_algorithm")
        key: Any
        if alg == "HS256":
            if not self.settings.hs256_secret:
                raise AuthError("HS256 tokens are not accepted here (no secret configured)", "bad_algorithm")
            key = self.settings.hs256_secret
        elif self.jwks is not None:
            key = await self.jwks.key(header.get("kid"))
        else:
            raise AuthError(f"{alg} tokens need a jwks_url in the gateway's auth settings", "bad_algorithm")
        s = self.settings
        try:
            return jwt.decode(token, key, algorithms=[alg], leeway=s.leeway_s, issuer=s.issuer or None,
                              audience=s.audience or None,
                              options={"require": ["exp"], "verify_aud": bool(s.audience)})
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; get a new one", "expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not valid yet", "not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"the token is not for this gateway (audience must be {s.audience!r})",
                            "wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"the token was not issued by {s.issuer!r}", "wrong_issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token lacks the {exc.claim!r} claim", "missing_claim") from None
        except jwt.PyJWTError:
            raise AuthError("the token's signature does not verify", "bad_signature") from None

    def _principal(self, claims: dict[str, Any]) -> Principal:
        """The first role the token names that this gateway knows."""
        named = _names(claims.get(self.settings.roles_claim)) + _names(claims.get("scope"))
        for role in named:
            policy = self.roles.get(role)
            if policy is not None:
                return Principal(str(claims.get("sub") or ""), role, policy,
                                 float(claims["exp"]) + self.settings.leeway_s)
        raise AuthError(f"the token grants no role this gateway knows (known: {', '.join(sorted(self.roles))})",
                        "unknown_role", code="FORBIDDEN", status=403)


def _names(value: Any) -> list[str]:
    """Role names from a claim: a list, or a space-separated string (OAuth `scope`)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def issue(settings: AuthSettings, role: str, subject: str, ttl_s: int, now: float | None = None) -> str:
    """An HS256 token for development and the demo."""
    if not settings.hs256_secret:
        raise ValueError("no auth.hs256_secret is configured, so this gateway cannot sign tokens; "
                         "get one from your identity provider")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"sub": subject, "roles": [role], "iat": issued, "nbf": issued, "exp": issued + ttl_s}
    if settings.roles_claim != "roles":
        claims[settings.roles_claim] = [role]
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.hs256_secret, algorithm="HS256")
