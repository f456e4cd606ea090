"""SQL sources through SQLAlchemy 2 async: SQLite (aiosqlite), PostgreSQL (asyncpg), MariaDB (asyncmy).

A declared entity is a SELECT whose `IN :keys` takes the keys (or a table read by its key column); its
rows are the records, each mapped, by the key it carries. Every read goes through `rows`: compiled once
per shape, run on the driver's connection. A declared action (connectors/actions.py) is an UPDATE of
every key in one transaction, or an insert that adds a row only if it is new.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sqlalchemy import bindparam, text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import NullType

from connectors.actions import Action, Args, Insert, Update, compile_value
from connectors.base import SOURCE_BAD_RESPONSE, SOURCE_UNAVAILABLE, Connector, Fetcher, SourceConfig, Write
from connectors.declaration import Entity, assemble, expression
from connectors.sql_drivers import FAILED, UNAVAILABLE, driver_for

SHAPES = 512  # compiled reads kept per source, oldest dropped: (statement, number of keys, parameter names)
# Where a compiled read takes each argument from: an int is a position in the keys, a str a parameter.
Recipe = list[int | str]
Rows = Sequence[Mapping[str, Any]]


def existing_sqlite(dsn: str) -> str:
    """A SQLite file DSN opened read-write without creating the file: a source's database that is missing is
    a source that is down, not a new empty database (which would answer "no such table" and linger on disk
    after the real file arrives)."""
    m = re.fullmatch(r"(sqlite(?:\+\w+)?:///)([^?]+)", dsn)
    if m is None or m.group(2) == ":memory:" or m.group(2).startswith("file:"):
        return dsn
    return f"{m.group(1)}file:{quote(m.group(2), safe='/')}?mode=rw&uri=true"


class SqlConnector(Connector):
    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        # Every read slot of the bulkhead can hold a connection; two more are left for writes.
        pool: dict[str, Any] = {"pool_size": config.concurrency, "max_overflow": 2}
        if not config.dsn.startswith("sqlite"):
            pool["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(existing_sqlite(config.dsn), **pool)
        self.driver = driver_for(self.engine.dialect.driver)  # None: reads go through SQLAlchemy's execute
        # Reads keep their connections: checking one out of the pool and back (a rollback) cost ~0.2 ms a
        # query, a third of it (measured against a held connection, aiosqlite).
        self._idle: list[tuple[AsyncConnection, Any]] = []  # (SQLAlchemy's connection, the driver's)
        self._shapes: OrderedDict[tuple[str, int, tuple[str, ...]], tuple[str, Recipe]] = OrderedDict()
        self._statements: dict[str, Any] = {}

    def declared(self, name: str, e: Entity) -> Fetcher:
        """One SELECT for all the keys (`bind` turns each key into the value the IN compares)."""
        sql = e.sql if e.sql is not None else \
            f"SELECT {', '.join(e.columns) or '*'} FROM {e.table} WHERE {e.key_column} IN :keys"
        answer = assemble(e, self.mapper(name, e), self.name)
        read = self.rows
        if e.mapping is not None and (e.group is None or e.group.python is None):
            async def rows(sql: str, keys: Sequence[Any]) -> Rows:
                # The mapping reads optional columns with .get, which a driver's row may not have.
                return [dict(r) for r in await read(sql, keys)]
        else:
            rows = read
        if e.bind is None:
            async def fetch(_: Any, keys: list[str]) -> dict[str, Any]:
                return answer(await rows(sql, keys), keys)
            return fetch
        bind = expression(e.bind)

        async def fetch_bound(_: Any, keys: list[str]) -> dict[str, Any]:
            return answer(await rows(sql, sorted({bind({"key": k}) for k in keys})), keys)
        return fetch_bound

    def action(self, name: str, a: Action) -> Write:
        return self._update(a.update) if a.update is not None else self._insert(a.insert)  # type: ignore[arg-type]

    def _update(self, u: Update) -> Write:
        """Set the columns whose value is given on every key's row, in one transaction; the row count."""
        columns = [(column, compile_value(v)) for column, v in u.set.items()]
        head, tail = f"UPDATE {u.table} SET ", f" WHERE {u.key_column} IN :keys"
        execute = self.execute

        async def update(args: Args) -> int:
            values = {c: v for c, value in columns if (v := value(args)) is not None}
            if not values:
                return 0
            sql = head + ", ".join(f"{c} = :{c}" for c in values) + tail
            [count] = await execute([(sql, {**values, "keys": list(args["keys"])})])
            return count
        return update

    def _insert(self, i: Insert) -> Write:
        """Add the row unless one with the same unique columns is there; True if it was new."""
        values = [(column, compile_value(v)) for column, v in i.values.items()]
        first, *rest = i.unique
        exists = f"SELECT 1 FROM {i.table} WHERE {first} IN :keys" + "".join(f" AND {c} = :{c}" for c in rest)
        rows, insert_new = self.rows, self.insert_new

        async def insert(args: Args) -> bool:
            row = {c: value(args) for c, value in values}
            if await rows(exists, [row[first]], **{c: row[c] for c in rest}):  # a read: no write when it is there
                return False
            # Concurrent writers all get past the read above; the unique constraint lets one row in.
            return await insert_new(i.table, row)
        return insert

    async def rows(self, sql: str, keys: Sequence[Any], **params: Any) -> Rows:
        """Rows of `sql` (by column name), whose `:keys` parameter expands to the list of keys."""
        keys = list(keys)
        if self.driver is None:
            stmt = self._statements.get(sql)
            if stmt is None:
                stmt = self._statements[sql] = text(sql).bindparams(bindparam("keys", expanding=True))
            values = {"keys": keys, **params}
            return await self.guarded(lambda: self._read(lambda held: self._sqlalchemy_rows(held[0], stmt, values)))
        driver = self.driver
        statement, recipe = self._shape(sql, len(keys), tuple(params))
        args = [keys[i] if isinstance(i, int) else params[i] for i in recipe]
        return await self.guarded(lambda: self._read(lambda held: driver.fetch(held[1], statement, args)))

    def _shape(self, sql: str, n: int, names: tuple[str, ...]) -> tuple[str, Recipe]:
        """The dialect's SQL for `n` keys, and where each of its placeholders takes its value."""
        key = (sql, n, names)
        shape = self._shapes.get(key)
        if shape is not None:
            return shape
        # Compile with marker values, then read back which marker each placeholder got.
        untyped = NullType()  # no casts: the columns' own types decide, as on the SQLAlchemy path
        binds = [bindparam("keys", [f"\0{i}" for i in range(n)], expanding=True, type_=untyped),
                 *(bindparam(p, f"\0:{p}", type_=untyped) for p in names)]
        compiled = text(sql).bindparams(*binds).compile(dialect=self.engine.dialect,
                                                        compile_kwargs={"render_postcompile": True})
        markers = compiled.construct_params()
        recipe: Recipe = [m[2:] if m[1] == ":" else int(m[1:]) for m in (markers[p] for p in compiled.positiontup or ())]
        shape = self._shapes[key] = (compiled.string, recipe)
        if len(self._shapes) > SHAPES:
            self._shapes.popitem(last=False)
        return shape

    async def _hold(self) -> tuple[AsyncConnection, Any]:
        conn = await self.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # reads only: no transaction to end
            raw = (await conn.get_raw_connection()).driver_connection
            if self.driver is not None:
                await self.driver.prepare(raw)
        except BaseException:
            await self._discard(conn)
            raise
        return conn, raw

    async def _read(self, run: Callable[[tuple[AsyncConnection, Any]], Awaitable[Rows]]) -> Rows:
        """`run` on a held read connection; its failures mapped to SourceErrors (and the connection dropped)."""
        held = self._idle.pop() if self._idle else None
        try:
            if held is None:
                held = await self._hold()
            rows = await run(held)
        except BaseException as exc:
            await self._discard(held[0] if held else None)  # even cancelled mid-query, its state is unknown
            verdict = self._verdict(exc)
            if verdict == UNAVAILABLE:  # the connection, not the query
                raise self.error(SOURCE_UNAVAILABLE, "database unavailable", repr(exc)[:300], retryable=True) from None
            if verdict == FAILED:
                raise self.error(SOURCE_BAD_RESPONSE, "query failed", repr(exc)[:300]) from None
            raise
        self._idle.append(held)
        return rows

    def _verdict(self, exc: BaseException) -> str | None:
        if isinstance(exc, (OperationalError, InterfaceError, OSError)):
            return UNAVAILABLE
        if isinstance(exc, SQLAlchemyError):
            return FAILED
        return self.driver.verdict(exc) if self.driver is not None else None

    async def execute(self, statements: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Statements run in one transaction (all or nothing); their row counts. A list parameter
        expands for `IN :name`."""
        def prepared(sql: str, params: dict[str, Any]) -> Any:
            lists = [bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list)]
            return text(sql).bindparams(*lists) if lists else text(sql)

        return await self.guarded(lambda: self._transaction([(prepared(q, p), p) for q, p in statements]))

    async def insert_new(self, table: str, row: dict[str, Any]) -> bool:
        """Insert `row` unless it would break one of the table's unique constraints; True if it was new.

        The dialect skips the duplicate itself, so a lost race is an answer and not a failed statement
        (which would count against the source's circuit)."""
        columns = ", ".join(row)
        values = ", ".join(f":{c}" for c in row)
        dialect = self.engine.dialect.name
        if dialect in ("mysql", "mariadb"):
            sql = f"INSERT IGNORE INTO {table} ({columns}) VALUES ({values})"
        else:  # SQLite 3.24+ and PostgreSQL 9.5+
            sql = f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"
        [inserted] = await self.execute([(sql, row)])
        return inserted == 1

    async def _transaction(self, statements: list[tuple[Any, dict[str, Any]]]) -> list[int]:
        try:
            async with self.engine.begin() as conn:
                return [(await conn.execute(stmt, params)).rowcount for stmt, params in statements]
        except (OperationalError, InterfaceError, OSError) as exc:
            raise self.error(SOURCE_UNAVAILABLE, "database unavailable", repr(exc)[:300], retryable=True) from None
        except SQLAlchemyError as exc:
            raise self.error(SOURCE_BAD_RESPONSE, "statement failed", repr(exc)[:300]) from None

    @staticmethod
    async def _sqlalchemy_rows(conn: AsyncConnection, stmt: Any, params: dict[str, Any]) -> Rows:
        result = await conn.execute(stmt, params)
        columns = list(result.keys())
        return [dict(zip(columns, row)) for row in result.all()]

    async def _discard(self, conn: AsyncConnection | None) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()

    async def close(self) -> None:
        for conn, _ in self._idle:
            with contextlib.suppress(Exception):
                await conn.close()
        self._idle.clear()
        await self.engine.dispose()
