"""populate() semantics on every backend: make() per missing key, one transaction per key,
errors, ordering and limits, key_source, the three-part make, progress display."""

from __future__ import annotations

import re

import pytest

import dj_flows as dj
from tests.populate.pipeline import read_calls

pytestmark = pytest.mark.timeout(120)


def ids(table) -> list[int]:
    return sorted(int(i) for i in table.fetch("id"))


def test_populate_makes_every_missing_key_once(pipeline, calls_file):
    pipeline.Source.insert([{"id": i} for i in range(6)])
    assert pipeline.Square.progress() == (6, 6)
    result = pipeline.Square.populate()
    assert result == {"success_count": 6, "error_list": []}
    assert ids(pipeline.Square) == list(range(6))
    assert ids(pipeline.Square.Note) == list(range(6))
    assert pipeline.Square.progress() == (0, 6)
    assert pipeline.Square.populate() == {"success_count": 0, "error_list": []}
    assert sorted(c[0] for c in read_calls(calls_file)) == list(range(6))
    assert (pipeline.Square & {"id": 4}).fetch1("value") == 16


def test_failed_make_leaves_nothing_of_its_key(pipeline):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "fail"}, {"id": 3}])
    result = pipeline.Square.populate(suppress_errors=True)
    assert result["success_count"] == 2
    assert result["error_list"] == [({"id": 2}, "ValueError: cannot square 2")]
    assert ids(pipeline.Square) == [1, 3]
    assert ids(pipeline.Square.Note) == [1, 3]  # the part row of key 2 was rolled back too
    assert pipeline.Square.progress() == (1, 3)


def test_failed_make_raises_without_suppress_errors(pipeline):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "fail"}, {"id": 3}])
    with pytest.raises(ValueError, match="cannot square 2"):
        pipeline.Square.populate()
    assert ids(pipeline.Square) == [1]  # key 1 was committed before key 2 failed
    assert not pipeline.Square().connection.in_transaction


def test_return_exception_objects(pipeline):
    pipeline.Source.insert([{"id": 2, "action": "fail"}])
    result = pipeline.Square.populate(suppress_errors=True, return_exception_objects=True)
    (key, error), = result["error_list"]
    assert key == {"id": 2}
    assert isinstance(error, ValueError) and str(error) == "cannot square 2"


def test_direct_insert_needs_allow_direct_insert(pipeline):
    pipeline.Source.insert1({"id": 1})
    with pytest.raises(dj.DataJointError, match="allow_direct_insert"):
        pipeline.Square.insert1({"id": 1, "value": 1, "worker": 0})
    pipeline.Square.insert1({"id": 1, "value": 1, "worker": 0}, allow_direct_insert=True)
    assert len(pipeline.Square) == 1


def test_restrictions_order_limit_max_calls(pipeline, calls_file):
    pipeline.Source.insert([{"id": i} for i in range(10)])
    assert pipeline.Square.populate("id < 3")["success_count"] == 3
    assert ids(pipeline.Square) == [0, 1, 2]
    assert pipeline.Square.progress("id < 5") == (2, 5)
    calls_file.unlink()
    pipeline.Square.populate(order="reverse", max_calls=2)
    assert [c[0] for c in read_calls(calls_file)] == [9, 8]
    calls_file.unlink()
    pipeline.Square.populate(limit=2)  # limit bounds the keys looked at, in key order
    assert [c[0] for c in read_calls(calls_file)] == [3, 4]
    calls_file.unlink()
    pipeline.Square.populate({"id": 6}, {"id": 7})  # several restrictions: all must hold
    assert read_calls(calls_file) == []
    pipeline.Square.populate(order="random")
    assert ids(pipeline.Square) == list(range(10))
    with pytest.raises(dj.DataJointError, match="order"):
        pipeline.Square.populate(order="sideways")


def test_populate_refuses_a_transaction_and_a_restricted_table(pipeline):
    pipeline.Source.insert1({"id": 1})
    with pytest.raises(dj.DataJointError, match="restricted"):
        (pipeline.Square & "id > 0").populate()
    connection = pipeline.Square().connection
    with connection.transaction(), pytest.raises(dj.DataJointError, match="transaction"):
        pipeline.Square.populate()


def test_make_kwargs_and_custom_key_source(make_schema):
    schema = make_schema("ks")
    seen = []

    @schema
    class Item(dj.Manual):
        definition = """
        item : int
        """

    @schema
    class Scaled(dj.Computed):
        definition = """
        -> Item
        ---
        scaled : int
        """

        @property
        def key_source(self):
            return Item & "item % 2 = 0"

        def make(self, key, factor=1):
            seen.append((key["item"], factor))
            self.insert1(dict(key, scaled=key["item"] * factor))

    Item.insert([{"item": i} for i in range(5)])
    assert Scaled.progress() == (3, 3)
    assert Scaled.populate(make_kwargs={"factor": 10})["success_count"] == 3
    assert sorted(seen) == [(0, 10), (2, 10), (4, 10)]
    assert sorted(Scaled.fetch("scaled").tolist()) == [0, 20, 40]


def test_table_without_make_fails_clearly(make_schema):
    schema = make_schema("nomake")

    @schema
    class Thing(dj.Manual):
        definition = """
        thing : int
        """

    @schema
    class Derived(dj.Computed):
        definition = """
        -> Thing
        """

    Thing.insert1({"thing": 1})
    with pytest.raises(NotImplementedError, match="make"):
        Derived.populate()


def test_three_part_make_computes_outside_the_transaction(make_schema):
    schema = make_schema("tri")
    states, changed = [], []

    @schema
    class Signal(dj.Manual):
        definition = """
        signal : int
        ---
        level : float
        """

    @schema
    class Filtered(dj.Computed):
        definition = """
        -> Signal
        ---
        doubled : float
        """

        class Trace(dj.Part):
            definition = """
            -> master
            sample : int
            """

        def make_fetch(self, key):
            return ((Signal & key).fetch1("level"),)

        def make_compute(self, key, level):
            states.append(self.connection.in_transaction)
            if key["signal"] == 2 and not changed:  # the inputs change while computing, once
                changed.append(key)
                Signal.update1({"signal": 2, "level": level + 1})
            return (level * 2,)

        def make_insert(self, key, doubled):
            states.append(self.connection.in_transaction)
            self.insert1(dict(key, doubled=doubled))
            self.Trace.insert([dict(key, sample=s) for s in range(3)])

    Signal.insert([{"signal": 1, "level": 1.5}, {"signal": 2, "level": 3.0}])
    result = Filtered.populate(suppress_errors=True)
    assert result["success_count"] == 1
    (key, message), = result["error_list"]
    assert key == {"signal": 2} and "changed" in message
    assert states == [False, True, False]
    assert Filtered.fetch("signal").tolist() == [1]
    assert len(Filtered.Trace()) == 3  # none for signal 2
    assert Filtered.populate()["success_count"] == 1  # inputs are stable now
    assert (Filtered & {"signal": 2}).fetch1("doubled") == 8.0


def test_generator_make_is_the_three_part_protocol(make_schema):
    schema = make_schema("gen")
    steps = []

    @schema
    class Number(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Cube(dj.Computed):
        definition = """
        -> Number
        ---
        cube : int
        """

        def make(self, key):
            n = (Number & key).fetch1("n")
            steps.append(("fetch", self.connection.in_transaction))
            computed = yield (n,)
            if computed is None:
                steps.append(("compute", self.connection.in_transaction))
                computed = (n**3,)
                yield computed
            steps.append(("insert", self.connection.in_transaction))
            self.insert1(dict(key, cube=computed[0]))
            yield

    Number.insert1({"n": 3})
    assert Cube.populate()["success_count"] == 1
    assert Cube.fetch1("cube") == 27
    assert steps == [("fetch", False), ("compute", False), ("fetch", True), ("insert", True)]


def test_lost_connection_rolls_back_and_the_key_is_retried(pipeline, calls_file):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "lose"}, {"id": 3}])
    result = pipeline.Square.populate(suppress_errors=True, reserve_jobs=True)
    assert result["success_count"] == 2
    (key, message), = result["error_list"]
    assert key == {"id": 2} and message.startswith("LostConnectionError")
    assert ids(pipeline.Square) == [1, 3]
    assert ids(pipeline.Square.Note) == [1, 3]
    assert len(pipeline.schema.jobs) == 0  # given back to the queue, not recorded as an error
    (pipeline.Source & {"id": 2}).delete()
    pipeline.Source.insert1({"id": 2})
    assert pipeline.Square.populate(reserve_jobs=True)["success_count"] == 1
    assert ids(pipeline.Square.Note) == [1, 2, 3]


def test_display_progress_shows_rate_and_eta(pipeline, capsys):
    pipeline.Source.insert([{"id": i} for i in range(3)])
    pipeline.Square.populate(display_progress=True)
    err = capsys.readouterr().err
    final = err.strip().split("\r")[-1]
    assert re.search(r"Square: 100%\|#+\| 3/3 \[\d\d:\d\d<\d\d:\d\d, [\d.]+ keys/s\]", final), final


def test_jobs_status_counts(pipeline):
    pipeline.Source.insert([{"id": 1}, {"id": 2, "action": "fail"}, {"id": 3}, {"id": 4}])
    pipeline.schema.jobs.ignore(pipeline.Square.table_name, {"id": 4})
    pipeline.Square.populate(reserve_jobs=True, suppress_errors=True)
    status = pipeline.Square.jobs_status()
    assert status == {"total": 4, "remaining": 2, "reserved": 0, "expired": 0, "error": 1, "ignore": 1}
    assert pipeline.schema.jobs.status() == {
        pipeline.Square.table_name: {"reserved": 0, "expired": 0, "error": 1, "ignore": 1}
    }
