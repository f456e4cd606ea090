"""SQL sources through SQLAlchemy 2 async: SQLite (aiosqlite), PostgreSQL (asyncpg), MariaDB (asyncmy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors.base import SOURCE_BAD_RESPONSE, SOURCE_UNAVAILABLE, Connector, SourceConfig


class SqlConnector(Connector):
    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        pool = {} if config.dsn.startswith("sqlite") else {"pool_size": config.concurrency, "max_overflow": 0,
                                                             "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(config.dsn, **pool)

    async def rows(self, sql: str, keys: Sequence[Any], **params: Any) -> list[dict[str, Any]]:
        """Rows of `sql`, whose `:keys` parameter expands to the list of keys."""
        stmt = text(sql).bindparams(bindparam("keys", expanding=True))
        return await self.guarded(lambda: self._once(stmt, {"keys": list(keys), **params}))

    async def execute(self, statements: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Statements run in one transaction (all or nothing); their row counts. A list parameter
        expands for `IN :name`."""
        def prepared(sql: str, params: dict[str, Any]) -> Any:
            lists = [bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list)]
            return text(sql).bindparams(*lists) if lists else text(sql)

        return await self.guarded(lambda: self._transaction([(prepared(q, p), p) for q, p in statements]))

    async def _transaction(self, statements: list[tuple[Any, dict[str, Any]]]) -> list[int]:
        try:
            async with self.engine.begin() as conn:
                return [(await conn.execute(stmt, params)).rowcount for stmt, params in statements]
        except (OperationalError, InterfaceError, OSError) as exc:
            raise self.error(SOURCE_UNAVAILABLE, "database unavailable", repr(exc)[:300], retryable=True) from None
        except SQLAlchemyError as exc:
            raise self.error(SOURCE_BAD_RESPONSE, "statement failed", repr(exc)[:300]) from None

    async def _once(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            async with self.engine.connect() as conn:
                result = await conn.execute(stmt, params)
                return [dict(r) for r in result.mappings()]
        except (OperationalError, InterfaceError, OSError) as exc:  # the connection, not the query
            raise self.error(SOURCE_UNAVAILABLE, "database unavailable", repr(exc)[:300], retryable=True) from None
        except SQLAlchemyError as exc:
            raise self.error(SOURCE_BAD_RESPONSE, "query failed", repr(exc)[:300]) from None

    async def close(self) -> None:
        await self.engine.dispose()
