"""Database access: one Store per process, the same code on SQLite (WAL) and PostgreSQL.

Every write goes through ``Store.write()``, a unit of work that holds the *gate lock* for its whole
transaction: ``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the audit head row on
PostgreSQL. Checks, counters, outbox rows and audit rows therefore commit atomically and in one total
order that every process shares, so limits cannot be overshot by concurrent workers.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session, create_engine, select

from engine.core.errors import DatabaseNotReady
from engine.adapters.models import AuditHead, ControlState


class DatabaseUnreachable(DatabaseNotReady):
    """The database cannot be connected to (server down, wrong host or port, login refused, SQLite file that
    cannot be opened): nothing is known about its schema."""


def _reason(err: BaseException) -> str:
    """The driver's reason on one line."""
    orig = getattr(err, "orig", None) or err
    text = " ".join(str(orig).split()) or type(orig).__name__
    return text if text.endswith((".", "?", "!")) else text + "."


def unreachable_message(url: str, err: BaseException) -> str:
    """Why the database at ``url`` cannot be connected to and what to check; the password is never shown."""
    u = make_url(url)
    reason = _reason(err)
    if u.get_backend_name() == "sqlite":
        return (f"cannot open the SQLite database file {u.database}: {reason} Check that its folder exists and "
                "that this user may write there (DATABASE_URL, default sqlite:///.data/alpha.db)")
    where = f"{u.host or 'localhost'}:{u.port or 5432}"
    shown = u.render_as_string(hide_password=True)
    low = reason.lower()
    if "password" in low or "authentication" in low or ("role" in low and "does not exist" in low):
        return (f"the database server at {where} refused the login of user {u.username!r} ({shown}): {reason} "
                "Check the user and password in DATABASE_URL and the server's pg_hba.conf")
    if "database" in low and "does not exist" in low:
        return (f"the database server at {where} is reachable but has no database {u.database!r} ({shown}): "
                f"{reason} Create it (createdb -h {u.host or 'localhost'} -p {u.port or 5432} {u.database}), "
                "then run `alpha init`")
    return (f"the database server at {where} is unreachable ({shown}): {reason} Check that PostgreSQL is "
            f"running and accepts connections on {where} (pg_isready -h {u.host or 'localhost'} -p "
            f"{u.port or 5432}), that the host and port in DATABASE_URL are right, and that no firewall is in the "
            "way")


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _prepare_sqlite_path(url: str) -> None:
    u = make_url(url)
    db = u.database
    if db and db != ":memory:" and not db.startswith("file:"):
        Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        _prepare_sqlite_path(url)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # a server that drops packets must not hang a command for minutes: fail (unreachable) after 10 s
    args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=args)


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._write_engine = (self.engine.execution_options(sqlite_begin="IMMEDIATE")
                              if self.dialect == "sqlite" else self.engine)

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction holding the gate lock. Commits on success, rolls back on error."""
        with Session(self._write_engine, expire_on_commit=False) as s:
            with s.begin():
                head = s.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
                if head is None:
                    raise DatabaseNotReady("the database is not initialised: run `alpha init`")
                yield s

    @contextmanager
    def write_plain(self) -> Iterator[Session]:
        """A write transaction without the gate lock (for rows outside the decision path)."""
        with Session(self._write_engine, expire_on_commit=False) as s:
            with s.begin():
                yield s

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # ------------------------------------------------------------------------------------ schema

    def alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def upgrade(self) -> tuple[str | None, str]:
        """Create or upgrade the schema to the newest migration. Returns (before, after) revisions."""
        from alembic import command

        before = self.current_revision()
        cfg = self.alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        after = self.current_revision()
        if after is None:
            raise DatabaseNotReady(f"upgrading {self.display_url} left no schema revision (alembic_version is empty)")
        return before, after

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        if head is None:
            raise DatabaseNotReady(f"no migration found in {MIGRATIONS_DIR}: the installed package is incomplete")
        return head

    def connect(self) -> sa.Connection:
        """A connection, or DatabaseUnreachable (never "not initialised") when none can be made."""
        try:
            return self.engine.connect()
        except OperationalError as e:
            raise DatabaseUnreachable(unreachable_message(self.url, e)) from None

    def current_revision(self) -> str | None:
        """The schema's alembic revision; None when the database is reachable but not initialised. Raises
        DatabaseUnreachable when it cannot be connected to."""
        with self.connect() as conn:
            try:
                if not sa.inspect(conn).has_table("alembic_version"):
                    return None
                return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            except (OperationalError, ProgrammingError):
                return None

    def check_ready(self) -> None:
        """Fail closed on a database that is unreachable (DatabaseUnreachable), empty or on another schema."""
        current = self.current_revision()
        if current is None:
            raise DatabaseNotReady(f"the database {self.display_url} is reachable but not initialised: "
                                   "run `alpha init`")
        head = self.head_revision()
        if current != head and self._knows(current):
            raise DatabaseNotReady(f"the database schema is at {current}, the code needs {head}: run `alpha init`")
        if current != head:
            raise DatabaseNotReady(f"the database schema is at {current}, which this code does not know (it needs "
                                   f"{head}): a newer release migrated it; run that release here (`alpha init` "
                                   "never downgrades)")

    def _knows(self, revision: str) -> bool:
        from alembic.script import ScriptDirectory

        try:
            return ScriptDirectory.from_config(self.alembic_config()).get_revision(revision) is not None
        except Exception:  # noqa: BLE001 - an unknown revision id
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def control_row(s: Session) -> ControlState:
    """The one control_state row (id 1), which the first migration seeds. Without it nothing can be decided (kill
    switch, phase, warm-up): DatabaseNotReady says so, where reading the row's fields would fail on None."""
    row = s.get(ControlState, 1)
    if row is None:
        raise DatabaseNotReady("the control_state row (id 1) is missing: the database was not initialised by "
                               "`alpha init` (or the row was deleted); run `alpha init`")
    return row


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """INSERT ``rows`` (dicts with the same keys) in one executemany, converting each value with its column
    type's own bind processor (as SQLAlchemy would) but without compiling parameters row by row, which costs
    more than the insert itself on large batches. Scalar column defaults fill the columns the rows lack; a table
    with other client-side defaults takes SQLAlchemy's path."""
    if not rows:
        return
    keys = list(rows[0])
    extra = {}
    for c in table.columns:
        if c.key not in rows[0] and c.default is not None:
            if not (isinstance(c.default, sa.ColumnDefault) and c.default.is_scalar):
                conn.execute(sa.insert(table), rows)
                return
            extra[c.key] = c.default.arg
    cols = [table.c[k] for k in keys] + [table.c[k] for k in extra]
    dialect = conn.dialect
    procs = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
    preparer = dialect.identifier_preparer
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.format_column(c) for c in cols)}) "
           f"VALUES ({', '.join([mark] * len(cols))})")
    tail = list(extra.values())
    params = [tuple([p(v) if p is not None else v for p, v in zip(procs, [r[k] for k in keys] + tail)])
              for r in rows]
    conn.exec_driver_sql(sql, params)


def default_store() -> Store:
    from engine.core.config import database_url

    return Store(database_url())


def is_ci() -> bool:
    from engine.core.envcheck import env_flag

    return env_flag("CI")
