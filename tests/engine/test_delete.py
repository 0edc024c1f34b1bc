"""Deleting on both backends: cascades planned from the dependency graph (renamed, secondary,
multi-path, diamond and cross-schema foreign keys) in one transaction, delete_quick, the safemode
prompt, DataJoint's part/master rules, and dropping tables."""

from __future__ import annotations

import builtins
import types

import pytest

import dj_flows as dj
import dj_flows.table as table_module
from dj_flows.errors import DataJointError, IntegrityError
from dj_flows.table import Table


@pytest.fixture(scope="module")
def db(make_schema):
    schema = make_schema("del")
    other = make_schema("delx")

    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int
        """

        class Trial(dj.Part):
            definition = """
            -> master
            trial : int
            """

    @schema
    class Pair(dj.Manual):  # two renamed references to the same parent
        definition = """
        -> Subject.proj(first='subject_id')
        -> Subject.proj(second='subject_id')
        """

    @schema
    class Device(dj.Manual):
        definition = """
        device : int
        """

    @schema
    class Rig(dj.Manual):  # a secondary reference: Rig's key does not contain Device's
        definition = """
        rig : int
        ---
        -> Device
        """

    @schema
    class Calibration(dj.Manual):
        definition = """
        -> Rig
        calibration : int
        """

    @schema
    class Left(dj.Manual):
        definition = """
        -> Subject
        side_l : int
        """

    @schema
    class Right(dj.Manual):
        definition = """
        -> Subject
        side_r : int
        """

    @schema
    class Both(dj.Manual):  # diamond: reached through Left and through Right
        definition = """
        -> Left
        -> Right
        """

    @schema
    class Report(dj.Manual):  # a master whose part depends on another table too
        definition = """
        report : int
        """

        class Entry(dj.Part):
            definition = """
            -> master
            -> Device
            """

    upstream = types.ModuleType("upstream")
    upstream.Subject = Subject

    @other
    class Remote(dj.Manual):  # cross-schema child
        definition = """
        -> upstream.Subject
        remote : int
        """

    return types.SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type) or k in ("schema", "other")})


@pytest.fixture
def filled(db):
    with dj.config(safemode=False):
        for table in (db.Remote, db.Both, db.Left, db.Right, db.Pair, db.Session.Trial, db.Session, db.Subject,
                      db.Calibration, db.Rig, db.Report.Entry, db.Report, db.Device):
            table.delete_quick()
    db.Subject.insert([(1,), (2,), (3,)])
    db.Session.insert([(1, 1), (1, 2), (2, 1)])
    db.Session.Trial.insert([(1, 1, t) for t in range(3)] + [(2, 1, 0)])
    db.Pair.insert([(1, 2), (2, 1), (2, 3), (3, 3)])
    db.Device.insert([(10,), (20,)])
    db.Rig.insert([(100, 10), (200, 20)])
    db.Calibration.insert([(100, 0), (100, 1), (200, 0)])
    db.Left.insert([(1, 0), (2, 0)])
    db.Right.insert([(1, 0), (3, 0)])
    db.Both.insert([(1, 0, 0)])
    db.Report.insert([(1,), (2,)])
    db.Report.Entry.insert([(1, 10), (1, 20), (2, 20)])
    db.Remote.insert([(1, 0), (2, 0), (3, 0)])
    return db


def keys(table, *names):
    return sorted(tuple(row[n] for n in names) for row in table.fetch(as_dict=True))


def test_cascade_through_parts_renames_diamond_and_schemas(filled):
    db = filled
    assert (db.Subject & {"subject_id": 1}).delete() == 1
    assert keys(db.Subject, "subject_id") == [(2,), (3,)]
    assert keys(db.Session, "subject_id", "session") == [(2, 1)]
    assert keys(db.Session.Trial, "subject_id", "trial") == [(2, 0)]
    assert keys(db.Pair, "first", "second") == [(2, 3), (3, 3)]  # both renamed paths
    assert keys(db.Left, "subject_id") == [(2,)] and keys(db.Right, "subject_id") == [(3,)]
    assert len(db.Both) == 0
    assert keys(db.Remote, "subject_id") == [(2,), (3,)]  # the other schema
    assert len(db.Device) == 2 and len(db.Calibration) == 3  # untouched branches


def test_cascade_through_a_secondary_reference(filled):
    """Deleting a Device deletes the Rigs that use it and only their Calibrations."""
    db = filled
    (db.Device & {"device": 10}).delete(force_parts=True)
    assert keys(db.Rig, "rig") == [(200,)]
    assert keys(db.Calibration, "rig", "calibration") == [(200, 0)]
    assert keys(db.Report.Entry, "report", "device") == [(1, 20), (2, 20)]


def test_delete_everything_and_nothing(filled):
    db = filled
    assert (db.Subject & {"subject_id": 42}).delete() == 0
    assert len(db.Subject) == 3
    assert db.Subject.delete() == 3
    assert len(db.Session) == len(db.Pair) == len(db.Remote) == len(db.Both) == 0


def test_root_restricted_by_a_descendant(filled):
    """The sessions that have a trial 2: their keys are read before the cascade empties Trial."""
    db = filled
    (db.Session & (db.Session.Trial & "trial = 2")).delete()
    assert keys(db.Session, "subject_id", "session") == [(1, 2), (2, 1)]
    assert keys(db.Session.Trial, "subject_id", "session", "trial") == [(2, 1, 0)]


def test_cascade_is_one_transaction(filled, monkeypatch: pytest.MonkeyPatch):
    db = filled
    calls = []
    original = Table._delete_rows

    def failing(self):
        calls.append(self.table_name)
        if len(calls) == 3:
            raise DataJointError("simulated failure in the middle of a cascade")
        return original(self)

    monkeypatch.setattr(Table, "_delete_rows", failing)
    before = {t: len(t()) for t in (db.Subject, db.Session, db.Session.Trial, db.Pair, db.Remote, db.Both)}
    with pytest.raises(DataJointError, match="simulated"):
        (db.Subject & {"subject_id": 1}).delete()
    monkeypatch.setattr(Table, "_delete_rows", original)
    assert len(calls) == 3
    assert {t: len(t()) for t in before} == before
    assert not db.schema.connection.in_transaction


def test_delete_quick(filled):
    db = filled
    with pytest.raises(IntegrityError):
        (db.Subject & {"subject_id": 3}).delete_quick()
    assert (db.Calibration & {"rig": 100}).delete_quick(get_count=True) == 2
    assert (db.Calibration & {"rig": 100}).delete_quick() is None
    assert len(db.Calibration) == 1


def test_safemode_prompt(filled, monkeypatch: pytest.MonkeyPatch, capsys):
    db = filled
    answers = []
    monkeypatch.setattr(table_module, "_interactive", lambda: True)
    monkeypatch.setattr(builtins, "input", lambda prompt: answers.pop(0))
    answers.append("no")
    assert (db.Subject & {"subject_id": 1}).delete(safemode=True) == 0
    assert len(db.Subject) == 3 and len(db.Session.Trial) == 4
    printed = capsys.readouterr().out
    assert "Deleting 1 rows from" in printed and "session__trial" in printed
    answers.append("yes")
    assert (db.Subject & {"subject_id": 1}).delete(safemode=True) == 1
    assert len(db.Subject) == 2
    assert not answers
    with dj.config(safemode=False):  # safemode off: no question asked
        assert (db.Subject & {"subject_id": 2}).delete() == 1
    monkeypatch.setattr(table_module, "_interactive", lambda: False)
    with dj.config(safemode=True):  # not interactive: no question either
        assert (db.Subject & {"subject_id": 3}).delete() == 1


def test_delete_inside_a_transaction(filled):
    db = filled
    connection = db.schema.connection
    with connection.transaction():
        with pytest.raises(DataJointError, match="transaction"):
            (db.Subject & {"subject_id": 1}).delete(safemode=True)
        (db.Subject & {"subject_id": 1}).delete(safemode=False)
        assert len(db.Subject) == 2
    assert len(db.Subject) == 2
    with pytest.raises(RuntimeError), connection.transaction():
        (db.Subject & {"subject_id": 2}).delete(safemode=False)
        raise RuntimeError("roll back the outer transaction")
    assert len(db.Subject) == 2 and len(db.Session & {"subject_id": 2}) == 1


def test_part_master_rules(filled):
    db = filled
    with pytest.raises(DataJointError, match="master"):
        (db.Session.Trial & {"trial": 0}).delete()
    assert len(db.Session.Trial) == 4
    (db.Session.Trial & {"trial": 0}).delete(force=True)
    assert len(db.Session.Trial) == 2
    # deleting a Device reaches Report.Entry, a part whose master is not in the cascade
    with pytest.raises(DataJointError, match="part table .*report__entry.*master"):
        (db.Device & {"device": 10}).delete()
    assert len(db.Device) == 2 and len(db.Report.Entry) == 3 and len(db.Rig) == 2
    (db.Device & {"device": 10}).delete(force_masters=True)  # takes report 1 and all its entries
    assert keys(db.Report, "report") == [(2,)]
    assert keys(db.Report.Entry, "report", "device") == [(2, 20)]
    assert keys(db.Device, "device") == [(20,)]
    (db.Device & {"device": 20}).delete(force_parts=True)  # leaves report 2 without entries
    assert keys(db.Report, "report") == [(2,)] and len(db.Report.Entry) == 0
    # deleting a master takes its parts
    (db.Session & {"subject_id": 2}).delete()
    assert len(db.Session.Trial & {"subject_id": 2}) == 0


def test_drop(make_schema):
    schema = make_schema("drop")

    @schema
    class Top(dj.Manual):
        definition = """
        top : int
        """

    @schema
    class Middle(dj.Manual):
        definition = """
        -> Top
        middle : int
        """

        class Piece(dj.Part):
            definition = """
            -> master
            piece : int
            """

    @schema
    class Bottom(dj.Manual):
        definition = """
        -> Middle
        bottom : int
        """

    Top.insert1((1,))
    with pytest.raises(DataJointError):
        Top.drop_quick()
    assert Top.is_declared
    with pytest.raises(DataJointError, match="restricted"):
        (Middle & "middle = 1").drop()
    Middle.drop()
    assert not Middle.is_declared and not Bottom.is_declared and not Middle.Piece.is_declared
    assert Top.is_declared and len(Top) == 1
    assert set(schema.list_tables()) == {"top"}
    Top.drop()
    assert schema.list_tables() == []


def test_drop_asks_in_safemode(make_schema, monkeypatch: pytest.MonkeyPatch, capsys):
    schema = make_schema("dropask")

    @schema
    class Top(dj.Manual):
        definition = """
        top : int
        """

    @schema
    class Under(dj.Manual):
        definition = """
        -> Top
        """

    answers = ["no", "yes"]
    monkeypatch.setattr(table_module, "_interactive", lambda: True)
    monkeypatch.setattr(builtins, "input", lambda prompt: answers.pop(0))
    with dj.config(safemode=True):
        Top.drop()
        assert Top.is_declared and Under.is_declared
        assert f"{schema.database}.under" in capsys.readouterr().out  # the tables it would drop
        Top.drop()
    assert not Top.is_declared and not Under.is_declared and not answers
