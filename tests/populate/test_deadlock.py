"""A make() that MySQL picks as a deadlock's victim: the whole transaction is rolled back and the
make runs again at once under the same reservation; only a key that deadlocks on every attempt is
given back to the queue (never recorded as an error)."""

from __future__ import annotations

import threading
import time

import pytest

import dj_flows as dj
from dj_flows.populate import MAKE_ATTEMPTS

pytestmark = pytest.mark.timeout(120)
RIVAL_ROWS = 40  # the rival's transaction is heavier, so InnoDB rolls back the make instead


@pytest.fixture
def mysql_only(backend):
    if backend != "mysql":
        pytest.skip("SQLite takes one write lock per transaction: it cannot deadlock")


def declare(schema: dj.Schema, deadlocks: int) -> tuple:
    attempts: list[dict] = []

    class Slot(dj.Manual):
        definition = """
        slot : int
        ---
        n : int
        """

    class Source(dj.Manual):
        definition = """
        id : int
        """

    class Tally(dj.Computed):
        definition = """
        -> Source
        ---
        seen : int
        """

        def make(self, key):
            attempts.append(dict(key))
            bump(1)
            if len(attempts) <= deadlocks:
                rival = threading.Thread(target=lock_all_then_slot_one)
                rival.start()
                time.sleep(0.5)  # the rival now holds slots 2.. and waits for slot 1
                try:
                    bump(2)  # waits for the rival: a deadlock, and this transaction is the victim
                finally:
                    rival.join()
            self.insert1(dict(key, seen=(Slot & {"slot": 1}).fetch1("n")))

    def bump(slot: int) -> None:
        dj.conn().query(f"UPDATE {Slot.full_table_name} SET n = n + 1 WHERE slot = {int(slot)}")

    def lock_all_then_slot_one() -> None:
        with dj.conn().transaction():
            dj.conn().query(f"UPDATE {Slot.full_table_name} SET n = n + 1 WHERE slot > 1")
            bump(1)

    context = {"Slot": Slot, "Source": Source}
    for table in (Slot, Source, Tally):
        schema(table, context=context)
    Slot.insert([{"slot": s, "n": 0} for s in range(1, RIVAL_ROWS + 1)])
    Source.insert1({"id": 7})
    return Slot, Tally, attempts


def test_deadlocked_make_runs_again_and_succeeds(mysql_only, make_schema):
    schema = make_schema("deadlock")
    Slot, Tally, attempts = declare(schema, deadlocks=1)
    result = Tally.populate(reserve_jobs=True, suppress_errors=True)
    assert result == {"success_count": 1, "error_list": []}
    assert attempts == [{"id": 7}, {"id": 7}]
    # the first attempt's bump was rolled back; the rival's and the second attempt's stayed
    assert (Slot & {"slot": 1}).fetch1("n") == 2
    assert Tally.fetch1("seen") == 2
    assert len(schema.jobs) == 0


def test_a_key_that_always_deadlocks_is_given_back(mysql_only, make_schema):
    schema = make_schema("deadlock_always")
    Slot, Tally, attempts = declare(schema, deadlocks=MAKE_ATTEMPTS)
    result = Tally.populate(reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    (key, message), = result["error_list"]
    assert key == {"id": 7} and "1213" in message and "Deadlock" in message
    assert len(attempts) == MAKE_ATTEMPTS
    assert len(Tally) == 0 and len(schema.jobs) == 0  # released to the queue, not an error row
    assert (Slot & {"slot": 1}).fetch1("n") == MAKE_ATTEMPTS  # only the rivals' bumps stayed
    assert Tally.populate(reserve_jobs=True) == {"success_count": 1, "error_list": []}
