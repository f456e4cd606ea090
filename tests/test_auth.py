"""Token verification and masks, in-process: HS256, RS256 and ES256 from a JWKS served on loopback,
key rotation with a rate-limited refetch, remembered tokens still expiring, and the mask functions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from server.auth import Authenticator, AuthError, issue
from server.policy import mask_contact, mask_email, mask_initials, mask_phone
from server.settings import AuthSettings, RoleSettings
from tests.local_server import serving

SECRET = "s" * 32
ROLES = {"agent": RoleSettings(), "pos": RoleSettings(mutations=[])}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _settings(**kw: Any) -> AuthSettings:
    return AuthSettings(**{"hs256_secret": SECRET, "issuer": "idp", "audience": "cg", **kw})


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_hs256_token_round_trip_and_expiry_of_a_remembered_token() -> None:
    clock = Clock(time.time())  # PyJWT checks the first use against the real clock
    settings = _settings(leeway_s=10)
    auth = Authenticator(settings, ROLES, clock=clock)
    token = issue(settings, "pos", "till-1", ttl_s=60, now=clock.now)

    async def go() -> None:
        who = await auth.authenticate(f"Bearer {token}")
        assert (who.subject, who.role) == ("till-1", "pos")
        clock.now += 65  # past exp, within the leeway: still accepted from memory
        assert (await auth.authenticate(f"Bearer {token}")).role == "pos"
        clock.now += 10  # past exp + leeway: refused, though remembered
        with pytest.raises(AuthError, match="expired"):
            await auth.authenticate(f"Bearer {token}")

    _run(go())


def test_missing_and_malformed_headers() -> None:
    auth = Authenticator(_settings(), ROLES)
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(AuthError) as err:
            _run(auth.authenticate(header))
        assert err.value.status == 401
    anonymous = Authenticator(_settings(anonymous_role="pos"), ROLES)
    assert _run(anonymous.authenticate(None)).role == "pos"


def test_token_without_exp_or_with_a_foreign_algorithm_is_refused() -> None:
    auth = Authenticator(_settings(), ROLES)
    no_exp = jwt.encode({"roles": ["agent"], "iss": "idp", "aud": "cg"}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="'exp'"):
        _run(auth.authenticate(f"Bearer {no_exp}"))
    hs512 = jwt.encode({"roles": ["agent"], "exp": 4_000_000_000}, SECRET * 2, algorithm="HS512")
    with pytest.raises(AuthError, match="not accepted"):
        _run(auth.authenticate(f"Bearer {hs512}"))
    unsigned = jwt.encode({"roles": ["agent"], "exp": 4_000_000_000}, None, algorithm="none")
    with pytest.raises(AuthError, match="not accepted"):
        _run(auth.authenticate(f"Bearer {unsigned}"))


def test_first_known_role_wins_and_unknown_roles_are_403() -> None:
    auth = Authenticator(_settings(), ROLES)

    def token(claims: dict[str, Any]) -> str:
        return jwt.encode({"iss": "idp", "aud": "cg", "exp": 4_000_000_000, **claims}, SECRET, algorithm="HS256")

    assert _run(auth.authenticate(f"Bearer {token({'roles': ['admin', 'pos', 'agent']})}")).role == "pos"
    assert _run(auth.authenticate(f"Bearer {token({'scope': 'openid agent'})}")).role == "agent"
    with pytest.raises(AuthError) as err:
        _run(auth.authenticate(f"Bearer {token({'roles': 'admin'})}"))
    assert (err.value.status, err.value.code) == (403, "FORBIDDEN")


Keys = dict[str, Any]


def _jwks_app(keys: Keys, fetches: list[int]) -> web.Application:
    """A JWKS endpoint serving whatever `keys` holds now; counts its fetches."""
    async def jwks(_request: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response({"keys": list(keys.values())})

    app = web.Application()
    app.add_routes([web.get("/jwks.json", jwks)])
    return app


def _public_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if alg == "RS256" else ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@pytest.mark.parametrize("alg, make", [
    ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
])
def test_jwks_keys_rotation_and_rate_limited_refetch(alg: str, make: Callable[[], Any]) -> None:
    first, second = make(), make()
    keys: Keys = {"k1": _public_jwk(first, "k1", alg)}

    def token(private: Any, kid: str) -> str:
        return jwt.encode({"roles": ["agent"], "iss": "idp", "aud": "cg", "exp": 4_000_000_000, "sub": kid},
                          private, algorithm=alg, headers={"kid": kid})

    async def go() -> None:
        fetches: list[int] = []
        async with serving(_jwks_app(keys, fetches)) as base:
            url = f"{base}/jwks.json"
            clock = Clock()
            auth = Authenticator(_settings(hs256_secret="", jwks_url=url, jwks_min_refetch_s=30), ROLES)
            assert auth.jwks is not None
            auth.jwks.clock = clock
            assert (await auth.authenticate(f"Bearer {token(first, 'k1')}")).subject == "k1"
            assert len(fetches) == 1
            # The provider rotates to k2: an unknown kid refetches, but at most once per 30 s.
            keys["k2"] = _public_jwk(second, "k2", alg)
            clock.now += 5
            with pytest.raises(AuthError, match="k2"):
                await auth.authenticate(f"Bearer {token(second, 'k2')}")
            assert len(fetches) == 1
            clock.now += 30
            assert (await auth.authenticate(f"Bearer {token(second, 'k2')}")).subject == "k2"
            assert len(fetches) == 2
            # A token signed by a key the set does not hold under that kid fails the signature.
            with pytest.raises(AuthError, match="signature"):
                await auth.authenticate(f"Bearer {token(second, 'k1')}")
            # An HS256 token is not checked against the JWKS keys (no algorithm confusion).
            hs = jwt.encode({"roles": ["agent"], "exp": 4_000_000_000}, "x" * 32, algorithm="HS256")
            with pytest.raises(AuthError, match="HS256"):
                await auth.authenticate(f"Bearer {hs}")

    _run(go())


def test_jwks_unreachable_fails_the_token_clearly() -> None:
    async def go() -> None:
        auth = Authenticator(_settings(hs256_secret="", jwks_url="http://127.0.0.1:9/jwks.json"), ROLES)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode({"roles": ["agent"], "exp": 4_000_000_000}, key, algorithm="RS256", headers={"kid": "a"})
        with pytest.raises(AuthError, match="key set"):
            await auth.authenticate(f"Bearer {token}")

    _run(go())


def test_issue_refuses_without_a_secret() -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        issue(AuthSettings(hs256_secret="", jwks_url="http://idp/jwks"), "pos", "x", 60)


def test_masks() -> None:
    assert mask_email("carla.jansen@inbox.example") == "c\u2022\u2022\u2022@inbox.example"
    assert mask_phone("+31612345678") == "+\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022678"
    assert mask_phone("06 1234 5678") == "\u2022\u2022 \u2022\u2022\u2022\u2022 \u2022678"
    assert mask_initials("Anna de Vries") == "A. d. V."
    assert mask_contact("CARLOS.WEBER45@INBOX.EXAMPLE") == "C\u2022\u2022\u2022@INBOX.EXAMPLE"
    assert mask_contact("+31622364326") == "+\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022326"
    assert mask_contact("BA-20000084") == "BA-20000084" and mask_contact("1000135") == "1000135"
