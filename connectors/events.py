"""A source's `events:` declaration: how it tells the gateway that its records changed.

    events:
      webhook: {secret: "${HELPDESK_EVENTS_SECRET}"}           # signed POST /events (server/events.py)
      notify: {channel: crm_changes}                          # PostgreSQL LISTEN/NOTIFY
      poll: {entity: crm, table: customers, key_column: cust_no, updated_column: updated_at}
      contacts: {lookups: [email, phone]}                      # contacts starting: POST /events/contacts

`notify` runs where the source's dsn is PostgreSQL, `poll` everywhere else (SQLite, MariaDB); a SQL
source may declare both so that one declaration serves every engine. Without events a source's
records stay as fresh as their TTLs.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Webhook(_Model):
    secret: SecretStr = Field(description="HMAC-SHA256 key of the signatures (from the environment)")
    previous_secret: SecretStr | None = Field(None, description="still accepted while senders rotate to `secret`")
    entities: list[str] = Field([], description="the entities events may name; default: all of the source's")

    @field_validator("secret", "previous_secret")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    def secrets(self) -> list[bytes]:
        return [s.get_secret_value().encode() for s in (self.secret, self.previous_secret) if s is not None]


class Notify(_Model):
    channel: Identifier = Field(description="the LISTEN channel the database's triggers pg_notify on")


class Poll(_Model):
    """Rows whose `updated_column` moved past the last value seen are changes of `entity`, keyed by
    `key_column`. The column must change on every write (a trigger or the writer sets it) and be finer
    than the writes: two writes of one row within one tick of it look like one."""

    entity: str
    table: Identifier
    key_column: Identifier
    updated_column: Identifier
    interval_s: float = Field(1.0, gt=0, le=3600)
    batch: int = Field(1000, ge=10, le=100_000, description="rows read per poll at most (more rows than this "
                       "sharing one value of the column would stall the feed)")
    lookback: int = Field(8, ge=1, le=1000, description="polls whose rows are read again, for late commits")


class Contacts(_Model):
    """Contacts starting at this source (a call ringing, a chat opening), announced on POST /events/contacts,
    signed like its webhooks: the screen pop (server/contacts.py). The caller is identified by the identity
    lookups named here, tried in turn on the contact's `from`: the first that accepts the value is asked."""

    lookups: list[Identifier] = Field(min_length=1)


class Events(_Model):
    webhook: Webhook | None = None
    notify: Notify | None = None
    poll: list[Poll] = []
    contacts: Contacts | None = None

    @field_validator("poll", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    def problem(self, kind: str, dsn: str, entities: set[str]) -> str | None:
        """What is wrong with these events for a source of this kind, dsn and entities, or None."""
        if kind != "sql" and (self.notify or self.poll):
            return "events.notify and events.poll: for SQL sources (an HTTP source's events come by webhook)"
        if self.contacts is not None and self.webhook is None:
            return "events.contacts: needs events.webhook (its secret signs the announcements)"
        if self.notify and not self.poll and not is_postgres(dsn):
            return "events.notify: needs a PostgreSQL dsn (LISTEN/NOTIFY); declare events.poll for this database"
        named = [(f"events.poll.{i}.entity", p.entity) for i, p in enumerate(self.poll)]
        hooked = self.webhook.entities if self.webhook else []
        named += [(f"events.webhook.entities.{i}", e) for i, e in enumerate(hooked)]
        for where, entity in named:
            if entity not in entities:
                return f"{where}: {entity!r} is not an entity of this source (entities: {', '.join(sorted(entities))})"
        return None


def is_postgres(dsn: str) -> bool:
    return dsn.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")
