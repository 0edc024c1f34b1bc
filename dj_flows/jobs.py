"""The `~jobs` table: DataJoint 0.14's job queue, shared with DataJoint workers, plus leases.

Layout. `~jobs` is declared exactly as DataJoint 0.14 declares it (same columns, types, defaults
and comments; primary key `table_name, key_hash`; `key_hash` is DataJoint's MD5 of the key values
sorted by name), so a DataJoint 0.14 worker and ours can reserve from one queue: each skips keys
the other has reserved, errors and ignores mean the same to both, and either can read the rows.

Leases. A reservation must not outlive a worker killed with SIGKILL, yet a live worker's must not
expire however long its make() runs. We keep the lease in columns DataJoint already has, instead
of adding one: DataJoint (or an older dj-flows) may have declared the table, and adding a column
to a shared queue is DDL that every client would race on. So:
  * `timestamp` is the heartbeat. The worker's `LeaseKeeper` thread rewrites it (by the database
    server's clock, so hosts need not agree on time) every lease/3 seconds, on its own connection,
    outside the make() transaction, for as long as the worker holds the key.
  * `error_message` of a *reserved* row (DataJoint leaves it empty; it means something only for
    error rows) carries a marker `dj-flows lease <seconds>s <token>`: the lease length the holder
    promised to renew within, and a random token naming the holder.
A reservation whose heartbeat is older than its own lease (in whole seconds, so a lease of L
seconds lapses between L and L+2 seconds after its last renewal) is expired: any worker may take
it over with one conditional UPDATE (old token and stale heartbeat in the WHERE clause, so of two
claimants exactly one wins). Rows without a marker — DataJoint's own reservations, which are never
renewed — are never taken over (as in DataJoint, a human clears them), so a long DataJoint job is
never stolen.

Exactly once. The holder completes a key by deleting its own reservation (token in the WHERE
clause) inside the make() transaction, and commits only if that delete hit the row: the rows of a
key and the end of its reservation commit together, and a worker whose lease was taken over rolls
back. On MySQL the delete runs last (its row lock then fences off claimants until commit); on
SQLite, where a transaction holds the single write lock from its start, it runs first, so a worker
that lost its lease does not even call make().
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import hashlib
import logging
import os
import platform
import re
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from .codecs.blob import pack
from .errors import DataJointError, DuplicateError
from .table import FreeTable

logger = logging.getLogger("dj_flows.jobs")

ERROR_MESSAGE_LENGTH = 2047
TRUNCATION_APPENDIX = "...truncated"
JOBS_DEFINITION = """# job reservation table for `{database}`
table_name  :varchar(255)  # className of the table
key_hash  :char(32)  # key hash
---
status  :enum('reserved','error','ignore')  # if tuple is missing, the job is available
key=null  :blob  # structure containing the key
error_message=""  :varchar({length})  # error message returned if failed
error_stack=null  :mediumblob  # error stack if failed
user="" :varchar(255) # database user
host=""  :varchar(255)  # system hostname
pid=0  :int unsigned  # system process id
connection_id = 0  : bigint unsigned          # connection_id()
timestamp=CURRENT_TIMESTAMP  :timestamp   # automatic timestamp
"""
MARKER = re.compile(r"^dj-flows lease (\d+)s [0-9a-f]{16}$")
STATUSES = ("reserved", "error", "ignore")

# The few SQL fragments that differ between dialects and that only the job queue needs: the
# server's clock (in the form the `timestamp` column stores) and the session's identity.


def key_hash(mapping: Mapping[str, Any]) -> str:
    """DataJoint's job key hash: MD5 over str() of the values, sorted by attribute name."""
    hashed = hashlib.md5()
    for _, value in sorted(mapping.items()):
        hashed.update(str(value).encode())
    return hashed.hexdigest()


def truncate_message(message: str) -> str:
    if len(message) <= ERROR_MESSAGE_LENGTH:
        return message
    return message[: ERROR_MESSAGE_LENGTH - len(TRUNCATION_APPENDIX)] + TRUNCATION_APPENDIX


@dataclasses.dataclass
class Reservation:
    """One key held by this worker: `marker` is the reserved row's error_message (lease + token)."""

    table_name: str
    key_hash: str
    key: dict
    marker: str
    lease: int
    lost: bool = False  # set by the keeper when a renewal found the row taken over or gone


class JobTable(FreeTable):
    """The `~jobs` table of one schema (DataJoint's `schema.jobs`)."""

    def __init__(self, connection: Any, database: str, *, declare: bool = True) -> None:
        super().__init__(connection, database, "~jobs")
        self._user: str | None = None
        if declare and not self.is_declared:
            try:
                self.declare()
            except DataJointError:  # declared at the same moment by another worker
                self.connection.invalidate()
                if not self.is_declared:
                    raise

    @property
    def definition(self) -> str:  # type: ignore[override]
        return JOBS_DEFINITION.format(database=self.database, length=ERROR_MESSAGE_LENGTH)

    @definition.setter
    def definition(self, value: str) -> None:  # FreeTable assigns nothing; keep the fixed layout
        pass

    def delete(self, *args: Any, **kwargs: Any) -> int:  # type: ignore[override]
        """Delete the restricted jobs (no cascade, no prompt: nothing depends on ~jobs)."""
        return self.delete_quick(get_count=True) or 0

    def drop(self, force: bool = False) -> None:  # type: ignore[override]
        self.drop_quick()

    # -- SQL helpers ----------------------------------------------------------------------------
    def _q(self, name: str) -> str:
        return self.connection.backend.quote(name)

    @property
    def _ref(self) -> str:
        return self.connection.backend.table_ref(self.database, "~jobs")

    def _now_sql(self) -> str:
        return self.connection.backend.now_sql

    def server_now(self) -> datetime.datetime:
        """The database server's clock, as the `timestamp` column records it."""
        value = self.connection.query(f"SELECT {self._now_sql()}").fetchone()[0]
        return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value

    def user(self) -> str:
        if self._user is None:
            user_sql = self.connection.backend.current_user_sql
            if user_sql:
                self._user = str(self.connection.query(f"SELECT {user_sql}").fetchone()[0])
            else:
                try:
                    self._user = getpass.getuser()
                except Exception:  # noqa: BLE001 - no login name in some containers
                    self._user = ""
        return self._user[:255]

    def _insert(self, row: dict[str, Any], mode: str = "error") -> None:
        """Insert one job row (identity columns filled in here) as one autocommit statement."""
        backend = self.connection.backend
        row = dict(row, user=self.user(), host=platform.node()[:255], pid=os.getpid())
        columns = list(row)
        sql = backend.insert_statement(self._ref, [*columns, "connection_id"], mode, ["table_name", "key_hash"])
        # connection_id comes from the server: replace its placeholder (the last one) by the function
        head, marker, tail = sql.rpartition(_placeholder())
        sql = head + self.connection.backend.session_id_sql + tail
        values = [pack(v, native=True) if c in ("key", "error_stack") and v is not None else v for c, v in row.items()]
        self.connection.query(sql, values)

    # -- DataJoint's API ------------------------------------------------------------------------
    def reserve(self, table_name: str, key: Mapping[str, Any]) -> bool:
        """Reserve a key without a lease, as DataJoint does; False if someone holds it."""
        try:
            self._insert({"table_name": table_name, "key_hash": key_hash(key), "status": "reserved", "key": dict(key)})
        except DuplicateError:
            return False
        return True

    def ignore(self, table_name: str, key: Mapping[str, Any]) -> bool:
        """Mark a key to be skipped by populate(); False if it already has a job row."""
        try:
            self._insert({"table_name": table_name, "key_hash": key_hash(key), "status": "ignore", "key": dict(key)})
        except DuplicateError:
            return False
        return True

    def complete(self, table_name: str, key: Mapping[str, Any]) -> None:
        """Remove the job row of a key."""
        self.connection.query(
            f"DELETE FROM {self._ref} WHERE {self._q('table_name')} = {_placeholder()} AND {self._q('key_hash')} = {_placeholder()}",
            (table_name, key_hash(key)),
        )

    def error(self, table_name: str, key: Mapping[str, Any], error_message: str, error_stack: str | None = None) -> None:
        """Record a failed key (replacing any reservation), as DataJoint does."""
        row = {
            "table_name": table_name, "key_hash": key_hash(key), "status": "error", "key": dict(key),
            "error_message": truncate_message(error_message), "error_stack": error_stack,
            "timestamp": self.server_now().strftime("%Y-%m-%d %H:%M:%S"),  # as REPLACE would
        }
        self._insert(row, mode="replace")

    # -- leases ---------------------------------------------------------------------------------
    def acquire(self, table_name: str, key: Mapping[str, Any], lease: int, expired: str | None = None) -> Reservation | None:
        """Reserve `key` with a lease; `expired` is the marker of a lapsed reservation to take over.
        None when another worker holds the key (or won the race for the lapsed one)."""
        lease = max(int(lease), 1)
        reservation = Reservation(table_name, key_hash(key), dict(key), f"dj-flows lease {lease}s {secrets.token_hex(8)}", lease)
        if expired is None:
            try:
                self._insert({
                    "table_name": table_name, "key_hash": reservation.key_hash, "status": "reserved",
                    "key": reservation.key, "error_message": reservation.marker,
                })
            except DuplicateError:
                return None
            return reservation
        match = MARKER.match(expired)
        if match is None:
            return None
        cutoff = self.server_now() - datetime.timedelta(seconds=int(match.group(1)))
        ph, q = _placeholder(), self._q
        sql = (
            f"UPDATE {self._ref} SET {q('error_message')} = {ph}, {q('user')} = {ph}, {q('host')} = {ph}, "
            f"{q('pid')} = {ph}, {q('connection_id')} = {self.connection.backend.session_id_sql}, "
            f"{q('timestamp')} = {self._now_sql()} "
            f"WHERE {q('table_name')} = {ph} AND {q('key_hash')} = {ph} AND {q('status')} = 'reserved' "
            f"AND {q('error_message')} = {ph} AND {q('timestamp')} < {ph}"
        )
        params = (
            reservation.marker, self.user(), platform.node()[:255], os.getpid(),
            table_name, reservation.key_hash, expired, cutoff.strftime("%Y-%m-%d %H:%M:%S"),
        )
        if self.connection.query(sql, params).rowcount != 1:
            return None
        logger.info("took over the lapsed reservation of %s %s", table_name, reservation.key)
        return reservation

    def _own_row(self) -> str:
        q, ph = self._q, _placeholder()
        return (
            f"{q('table_name')} = {ph} AND {q('key_hash')} = {ph} AND {q('status')} = 'reserved' "
            f"AND {q('error_message')} = {ph}"
        )

    def renew(self, reservation: Reservation) -> bool:
        """Restart the lease clock of a held key; False if the reservation is no longer ours."""
        sql = f"UPDATE {self._ref} SET {self._q('timestamp')} = {self._now_sql()} WHERE {self._own_row()}"
        held = self.connection.query(sql, (reservation.table_name, reservation.key_hash, reservation.marker)).rowcount == 1
        if not held and not self.connection.backend.update_counts_matched_rows:
            # MySQL counts changed rows: a renewal within the same second changes nothing
            held = self._holds(reservation)
        return held

    def _holds(self, reservation: Reservation) -> bool:
        sql = f"SELECT 1 FROM {self._ref} WHERE {self._own_row()}"
        return self.connection.query(sql, (reservation.table_name, reservation.key_hash, reservation.marker)).fetchone() is not None

    def settle(self, reservation: Reservation) -> bool:
        """Delete our reservation (inside the make() transaction); False if it is not ours anymore."""
        sql = f"DELETE FROM {self._ref} WHERE {self._own_row()}"
        return self.connection.query(sql, (reservation.table_name, reservation.key_hash, reservation.marker)).rowcount == 1

    def release(self, reservation: Reservation) -> None:
        """Give a key back to the queue (after a transient failure) if we still hold it."""
        self.settle(reservation)

    def fail(self, reservation: Reservation, message: str, stack: str | None) -> bool:
        """Turn our reservation into an error row; False if it was not ours anymore."""
        q, ph = self._q, _placeholder()
        sql = (
            f"UPDATE {self._ref} SET {q('status')} = 'error', {q('error_message')} = {ph}, "
            f"{q('error_stack')} = {ph}, {q('timestamp')} = {self._now_sql()} WHERE {self._own_row()}"
        )
        params = (
            truncate_message(message), None if stack is None else pack(stack, native=True),
            reservation.table_name, reservation.key_hash, reservation.marker,
        )
        return self.connection.query(sql, params).rowcount == 1

    def blocking(self, table_name: str) -> tuple[set[str], dict[str, str]]:
        """Key hashes populate() must skip (errors, ignores, live reservations), and the lapsed
        reservations it may take over (key hash -> marker)."""
        q, ph = self._q, _placeholder()
        rows = self.connection.query(
            f"SELECT {q('key_hash')}, {q('status')}, {q('error_message')}, {q('timestamp')} FROM {self._ref} "
            f"WHERE {q('table_name')} = {ph}",
            (table_name,),
        ).fetchall()
        if not rows:
            return set(), {}
        now = self.server_now()
        blocked, lapsed = set(), {}
        for hash_, status, message, stamp in rows:
            if status == "reserved" and _lapsed(message, stamp, now):
                lapsed[hash_] = message
            else:
                blocked.add(hash_)
        return blocked, lapsed

    # -- reporting ------------------------------------------------------------------------------
    def status(self, table_name: str | None = None) -> dict[str, dict[str, int]]:
        """Counts per table: reserved (live leases or DataJoint reservations), expired (lapsed
        leases, to be taken over), error and ignore."""
        q, ph = self._q, _placeholder()
        where, params = (f" WHERE {q('table_name')} = {ph}", (table_name,)) if table_name else ("", ())
        rows = self.connection.query(
            f"SELECT {q('table_name')}, {q('status')}, {q('error_message')}, {q('timestamp')} FROM {self._ref}{where}",
            params,
        ).fetchall()
        now = self.server_now() if rows else None
        counts: dict[str, dict[str, int]] = {}
        for name, status, message, stamp in rows:
            entry = counts.setdefault(name, {"reserved": 0, "expired": 0, "error": 0, "ignore": 0})
            if status == "reserved" and _lapsed(message, stamp, now):
                status = "expired"
            entry[status] += 1
        return counts


def _lapsed(message: str, stamp: Any, now: datetime.datetime | None) -> bool:
    match = MARKER.match(message or "")
    if match is None or now is None:
        return False
    if isinstance(stamp, str):
        stamp = datetime.datetime.fromisoformat(stamp)
    # the column keeps whole seconds, so a measured age of `lease` may be a true age just above
    # lease - 1: only a measured age beyond the lease proves the holder missed it
    return (now - stamp).total_seconds() > int(match.group(1))


def _placeholder() -> str:
    from .backends import PH

    return PH


def jobs_status(table: Any, *restrictions: Any) -> dict[str, int]:
    """For an auto-populated table: total and remaining keys, and its jobs by status."""
    remaining, total = table.progress(*restrictions)
    schema = table.connection.schemas.get(table.database)
    jobs = schema.jobs if schema is not None else JobTable(table.connection, table.database)
    counts = jobs.status(table.table_name).get(table.table_name, {})
    return {"total": total, "remaining": remaining, **{k: counts.get(k, 0) for k in ("reserved", "expired", "error", "ignore")}}


class LeaseKeeper:
    """Renews this worker's reservations from a thread with its own connection."""

    def __init__(self, jobs: JobTable, lease: int) -> None:
        self.database = jobs.database
        self.settings = dict(jobs.connection.backend.settings)
        self.interval = max(lease / 3.0, 0.2)
        self._held: dict[tuple[str, str], Reservation] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        if str(self.settings.get("database.sqlite_path") or "").startswith(":memory:") and self.settings.get("database.backend") == "sqlite":
            return self  # a private database: no other worker can take a key over
        self._thread = threading.Thread(target=self._run, name="dj-flows-lease-keeper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def hold(self, reservation: Reservation) -> None:
        with self._lock:
            self._held[(reservation.table_name, reservation.key_hash)] = reservation

    def drop(self, reservation: Reservation) -> None:
        with self._lock:
            self._held.pop((reservation.table_name, reservation.key_hash), None)

    def _holds(self, reservation: Reservation) -> bool:
        with self._lock:
            return self._held.get((reservation.table_name, reservation.key_hash)) is reservation

    def _run(self) -> None:
        from .connection import Connection

        connection = None
        while not self._stop.wait(self.interval):
            with self._lock:
                held = list(self._held.values())
            if not held:
                continue
            try:
                if connection is None:
                    connection = Connection(self.settings)
                jobs = JobTable(connection, self.database, declare=False)
                for reservation in held:
                    if not jobs.renew(reservation) and self._holds(reservation):  # not just completed
                        reservation.lost = True
                        logger.warning("lost the reservation of %s %s", reservation.table_name, reservation.key)
            except DataJointError as error:  # a busy or unreachable database: try again next beat
                logger.warning("could not renew job leases: %s", error)
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()
