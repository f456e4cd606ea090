"""The serving sections of gateway.yaml: auth, roles, limits, apq, operations, cors and metrics (pydantic v2).

Each model refuses unknown keys and out-of-range values with the key path in the message, so a typo
in a security setting is an error at start, never a silently open door.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class AuthSettings(Section):
    """How a caller proves who it is. `mode: none` trusts every caller (logged as a warning at start)."""

    mode: Literal["jwt", "none"] = "jwt"
    hs256_secret: str = ""  # HS256 tokens (and `gateway.py token`); from the environment, never committed
    jwks_url: str = ""  # RS256/ES256 tokens: the identity provider's key set, cached
    jwks_cache_s: float = Field(300.0, gt=0)  # how long fetched keys are trusted
    jwks_min_refetch_s: float = Field(30.0, ge=0)  # an unknown `kid` refetches at most this often
    algorithms: list[Literal["HS256", "RS256", "ES256"]] = ["HS256", "RS256", "ES256"]
    issuer: str = ""  # checked when set
    audience: str = ""  # checked when set
    leeway_s: float = Field(30.0, ge=0, le=600)  # clock skew allowed on exp/nbf/iat
    roles_claim: str = "roles"  # a list or a space-separated string; `scope` is read too
    anonymous_role: str = ""  # a role for requests without a token; empty: they get 401
    default_ttl_s: int = Field(3600, gt=0)  # `gateway.py token` without --ttl

    @model_validator(mode="after")
    def _usable(self) -> AuthSettings:
        if self.mode == "jwt" and not (self.hs256_secret or self.jwks_url):
            raise ValueError("mode jwt needs hs256_secret or jwks_url")
        if self.hs256_secret and len(self.hs256_secret) < 32:
            raise ValueError("hs256_secret must be at least 32 characters (RFC 7518)")
        return self


class RoleSettings(Section):
    """What one role may do. Patterns are `Type.field`, `Type.*` or `*`; a bare `Type` in deny forbids
    every field of that type and every field that returns it."""

    read: list[str] = ["*"]
    deny: list[str] = []
    mask: dict[str, Literal["email", "phone", "initials", "contact", "drop"]] = {}
    mutations: list[str] = ["*"]  # mutation field names, or "*"
    introspection: bool = True
    operations: Literal["any", "registered"] = "any"  # registered: only the allow-listed documents run


class LimitSettings(Section):
    """Checked before any source is called."""

    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_tokens: int = Field(5000, ge=10)
    max_depth: int = Field(12, ge=1)
    max_aliases: int = Field(30, ge=0)
    max_cost: int = Field(5000, ge=1)  # estimated objects resolved: list sizes (from `first`) x nested selections
    max_int_arg: int = Field(36500, ge=1)  # integer arguments must lie within [0, max_int_arg]
    request_deadline_s: float = Field(10.0, gt=0)  # the whole request, after which its work is cancelled
    enabled: bool = True  # false: none of the above is checked (for measuring their cost; never in production)
    max_customers: int | None = Field(None, ge=1)  # customers one request may touch; None: gateway.max_ids
    list_size_estimate: int = Field(10, ge=1)  # the size assumed for a list without a `first` argument
    int_arg_bounds: dict[str, tuple[int, int]] = {}  # per argument, e.g. {"Customer.bestAgent.first": [0, 20]}


class ApqSettings(Section):
    """Apollo's Automatic Persisted Queries."""

    enabled: bool = True
    max_documents: int = Field(1000, ge=1)  # in memory, least recently used dropped
    ttl_s: int = Field(86400, gt=0)  # in Redis (cache.redis_url), when configured


class OperationsSettings(Section):
    """The allow-list: `.graphql` files whose operations roles with `operations: registered` may run."""

    folder: str = ""


class GraphiqlSettings(Section):
    """GraphiQL at GET /graphql: the document its editor opens with (a .graphql file, relative to the config)."""

    example: str = ""


class CorsSettings(Section):
    allow_origins: list[str] = []  # nothing by default
    allow_methods: list[str] = ["GET", "POST"]
    allow_headers: list[str] = ["authorization", "content-type"]
    allow_credentials: bool = False
    max_age_s: int = Field(600, ge=0)


class FederationSettings(Section):
    """Serving as an Apollo Federation v2 subgraph: `_service { sdl }`, `_entities` and `Customer @key(fields: "id")`.
    Off by default, so the public schema gains nothing a client did not ask for."""

    enabled: bool = False


class MetricsSettings(Section):
    """Prometheus metrics at GET /metrics (telemetry/metrics.py). Like /readyz it needs no token: serve it on
    an operator network only. Off: no /metrics route and no metric work per request or source call."""

    enabled: bool = True
    max_operation_names: int = Field(50, ge=0, le=1000)  # client-chosen names kept as labels; later ones "(other)"


class EventSettings(Section):
    """The `events:` section: the webhook endpoint POST /events (server/events.py). Each source's signing
    secret is in its own declaration (`events: {webhook: {secret: ...}}`)."""

    replay_window_s: float = Field(300.0, gt=0, le=3600)  # a delivery's timestamp may be this far from now
    max_body_bytes: int = Field(256 * 1024, ge=1024)  # 413 beyond it
    max_events: int = Field(500, ge=1, le=10_000)  # events in one delivery
    remember: int = Field(100_000, ge=100)  # deliveries remembered against replays (the oldest forgotten first)


class SubscriptionSettings(Section):
    """The `subscriptions:` section: GraphQL subscriptions over WebSocket (graphql-transport-ws) and SSE
    (server/subscriptions.py). Past a limit a new subscription is refused with TOO_MANY_SUBSCRIPTIONS."""

    max_per_connection: int = Field(20, ge=1, le=1000)  # operations at once on one WebSocket
    max_per_instance: int = Field(5000, ge=1)  # subscriptions at once on this gateway process, both transports
    connection_init_timeout_s: float = Field(10.0, gt=0, le=300)  # a WebSocket sends connection_init by then
    keepalive_s: float = Field(15.0, gt=0, le=300)  # an SSE comment this often, so proxies keep the stream open
    queue_size: int = Field(256, ge=1, le=100_000)  # events waiting per subscriber; past it the oldest dropped
    seen_max: int = Field(2000, ge=10, le=1_000_000)  # timeline events a customerEvents subscription remembers
