"""Declaring pipelines on both backends: tiers and their table names, foreign keys in all their forms,
indexes, Lookup contents, parts and masters, the ~log table, schema listing, dropping and spawning,
describe() round trips and foreign keys across schemas."""

from __future__ import annotations

import builtins
import sys
import types
from types import SimpleNamespace

import pytest

import dj_flows as dj
import dj_flows.table as table_module
from dj_flows.errors import DataJointError, DeclarationError, DuplicateError, IntegrityError
from dj_flows.table import FreeTable


@pytest.fixture(scope="module")
def db(make_schema):
    upstream_schema = make_schema("up")  # first: schemas are dropped in reverse order of creation
    schema = make_schema("main")

    @upstream_schema
    class Lab(dj.Lookup):
        definition = """
        # a lab
        lab : varchar(16)   # short name
        ---
        city = "unknown" : varchar(40)
        """
        contents = [("alpha", "Paris"), ("beta", "Oslo")]

    upstream = types.ModuleType("upstream")  # referenced as `upstream.Lab`: a table in a module
    upstream.Lab = Lab

    @schema
    class Subject(dj.Manual):
        definition = """
        # experimental subject
        subject_id : int
        ---
        -> upstream.Lab
        name : varchar(30)
        species = 'mouse' : enum('mouse', 'rat')
        unique index (name)
        index (species)
        """

    @schema
    class Kind(dj.Lookup):
        definition = """
        kind : char(1)
        ---
        label : varchar(20)
        """
        contents = [{"kind": "a", "label": "awake"}, {"kind": "s", "label": "asleep"}]

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : smallint unsigned
        ---
        -> [nullable] Kind
        -> Subject.proj(experimenter_id='subject_id')
        note = "" : varchar(100)  # free text
        """

        class Trial(dj.Part):
            definition = """
            -> master
            trial : int
            ---
            duration : float
            """

    @schema
    class Scan(dj.Imported):
        definition = """
        -> Session
        ---
        frames : int
        """

        def make(self, key):
            self.insert1(dict(key, frames=key["session"] * 10))

    @schema
    class Summary(dj.Computed):
        definition = """
        -> Scan
        ---
        total : int
        """

        class Detail(dj.Part):
            definition = """
            -> master
            -> Session.Trial
            """

        def make(self, key):
            trials = (Session.Trial & key).fetch("KEY")
            self.insert1(dict(key, total=len(trials)))
            self.Detail.insert([dict(key, **t) for t in trials])

    return SimpleNamespace(schema=schema, upstream_schema=upstream_schema, Lab=Lab, Subject=Subject,
                           Kind=Kind, Session=Session, Scan=Scan, Summary=Summary, upstream=upstream)


def test_table_names_carry_tier_prefixes(db):
    assert db.Subject.table_name == "subject"
    assert db.Kind.table_name == "#kind"
    assert db.Session.table_name == "session"
    assert db.Session.Trial.table_name == "session__trial"
    assert db.Scan.table_name == "_scan"
    assert db.Summary.table_name == "__summary"
    assert db.Summary.Detail.table_name == "__summary__detail"
    assert db.Lab.table_name == "#lab"
    assert set(db.schema.list_tables()) == {
        "subject", "#kind", "session", "session__trial", "_scan", "__summary", "__summary__detail"
    }
    assert db.Session.Trial.master is db.Session
    assert db.Summary.Detail.master is db.Summary
    assert db.Subject.database == db.schema.database
    assert db.schema.database in db.Subject.full_table_name


def test_lookup_contents_are_inserted_once(db):
    assert sorted(db.Kind.fetch("kind")) == ["a", "s"]
    assert dict(zip(*db.Lab.fetch("lab", "city"))) == {"alpha": "Paris", "beta": "Oslo"}

    class Kind(dj.Lookup):  # the same table again: contents are skipped as duplicates
        definition = db.Kind.definition
        contents = [{"kind": "a", "label": "awake"}, {"kind": "d", "label": "dreaming"}]

    db.schema(Kind)
    assert sorted(db.Kind.fetch("kind")) == ["a", "d", "s"]
    (db.Kind & {"kind": "d"}).delete_quick()


def test_log_table_records_declarations(db, backend):
    connection = db.schema.connection
    tables = connection.backend.list_tables(connection._cursor(), db.schema.database)
    assert "~log" in tables
    assert "~log" not in db.schema.list_tables()
    log = FreeTable(connection, db.schema.database, "~log")
    assert set(log.heading.names) == {"id", "timestamp", "version", "user", "host", "event"}
    assert log.heading["id"].autoincrement
    events = log.fetch("event", order_by="id")
    declared = [e for e in events if e.startswith("Declared")]
    assert len(declared) == 7
    assert any("session__trial" in e for e in declared)


def test_primary_and_secondary_foreign_keys(db):
    session = db.Session.heading
    assert session.primary_key == ["subject_id", "session"]
    assert session["subject_id"].type.declared == "int"
    assert session["kind"].nullable and not session["kind"].in_key
    assert session["kind"].type.declared == "char(1)"
    assert session["experimenter_id"].type.declared == "int" and not session["experimenter_id"].nullable
    assert db.Session.Trial.heading.primary_key == ["subject_id", "session", "trial"]
    assert db.Summary.Detail.heading.primary_key == ["subject_id", "session", "trial"]
    assert db.Subject.heading["lab"].in_key is False
    name = db.schema.database
    assert set(db.Session.parents()) == {f"{name}.subject", f"{name}.#kind"}
    assert db.Session.parents(primary=True) == [f"{name}.subject"]
    assert db.Session.parents(primary=False) == [f"{name}.#kind"] or set(db.Session.parents(primary=False)) == {
        f"{name}.#kind", f"{name}.subject"}
    assert set(db.Session.children()) == {f"{name}.session__trial", f"{name}._scan"}
    assert f"{db.upstream_schema.database}.#lab" in db.Subject.parents()
    assert set(db.Subject.descendants()) >= {f"{name}.session", f"{name}.__summary__detail"}
    assert db.Summary.ancestors()[0] in (f"{db.upstream_schema.database}.#lab", f"{name}.#kind")


def test_foreign_keys_are_enforced(db):
    db.Subject.insert1({"subject_id": 1, "lab": "alpha", "name": "one"})
    with pytest.raises(IntegrityError, match="session"):
        db.Session.insert1({"subject_id": 99, "session": 1, "experimenter_id": 1})
    with pytest.raises(IntegrityError, match="session"):  # the renamed reference is checked too
        db.Session.insert1({"subject_id": 1, "session": 1, "experimenter_id": 99})
    with pytest.raises(IntegrityError, match="subject"):  # cross-schema reference
        db.Subject.insert1({"subject_id": 2, "lab": "nowhere", "name": "two"})
    db.Session.insert1({"subject_id": 1, "session": 1, "experimenter_id": 1})  # nullable parent left out
    db.Session.insert1({"subject_id": 1, "session": 2, "experimenter_id": 1, "kind": "a"})
    assert (db.Session & {"session": 1}).fetch1("kind") is None
    with pytest.raises(IntegrityError):
        db.Session.insert1({"subject_id": 1, "session": 3, "experimenter_id": 1, "kind": "z"})


def test_unique_index_is_enforced(db):
    db.Subject.insert1({"subject_id": 10, "lab": "beta", "name": "unique-name"})
    with pytest.raises(DuplicateError, match="subject"):
        db.Subject.insert1({"subject_id": 11, "lab": "beta", "name": "unique-name"})
    assert not db.Subject & {"subject_id": 11}


def test_auto_populated_tiers(db):
    db.Subject.insert1({"subject_id": 1, "lab": "alpha", "name": "one"}, skip_duplicates=True)
    db.Session.insert([{"subject_id": 1, "session": s, "experimenter_id": 1} for s in (1, 2)], skip_duplicates=True)
    with pytest.raises(DataJointError, match="make"):
        db.Scan.insert1({"subject_id": 1, "session": 1, "frames": 3})
    db.Session.Trial.insert([{"subject_id": 1, "session": 1, "trial": t, "duration": 0.5} for t in range(3)],
                            skip_duplicates=True)
    db.Scan.populate()
    assert sorted(db.Scan.fetch("frames")) == [10, 20]
    db.Summary.populate()
    assert (db.Summary & {"session": 1}).fetch1("total") == 3
    assert len(db.Summary.Detail()) == 3
    db.Scan.insert1({"subject_id": 1, "session": 1, "frames": 3}, allow_direct_insert=True, skip_duplicates=True)


def test_describe_reconstructs_the_definition(db):
    text = db.Session.describe()
    assert "-> Subject\n" in text
    assert "-> [nullable] Kind\n" in text
    assert "-> Subject.proj(experimenter_id='subject_id')\n" in text
    assert "note = '' : varchar(100)  # free text" in text
    subject = db.Subject.describe()
    assert subject.startswith("# experimental subject\nsubject_id : int\n---\n")
    assert f"-> {db.upstream_schema.database}.Lab\n" in subject  # not in the caller's namespace
    assert "species = 'mouse' : enum('mouse','rat')" in subject
    assert "unique index (name)" in subject and "\nindex (species)" in subject
    assert "-> upstream.Lab\n" in db.Subject.describe(context={"upstream": db.upstream})
    assert db.Session.Trial.describe().startswith("-> Session\ntrial : int\n")
    upstream = db.upstream  # noqa: F841 - the caller's namespace is the default context
    assert "-> upstream.Lab\n" in db.Subject.describe()


def test_describe_round_trip_declares_the_same_tables(db, make_schema):
    copy = make_schema("copy")
    context: dict = {"upstream": db.upstream}
    originals = [db.Kind, db.Subject, db.Session]
    copies = {}
    for original in originals:
        definition = original.describe(context=context)
        cls = type(original.__name__, (original.__mro__[1],), {"definition": definition})
        copy(cls, context=dict(context))
        context[original.__name__] = cls
        copies[original.__name__] = cls
    connection = copy.connection
    for original in originals:
        theirs, ours = original.heading, copies[original.__name__].heading
        assert ours.names == theirs.names
        assert ours.primary_key == theirs.primary_key
        for name in theirs.names:
            a, b = theirs[name], ours[name]
            assert (a.type.declared, a.nullable, a.default, a.comment) == (b.type.declared, b.nullable, b.default, b.comment), name
        assert ours.table_comment == theirs.table_comment
        assert copies[original.__name__].describe(context=context) == original.describe(context=context)
        indexes = connection.backend.indexes(connection._cursor(), original.database, original.table_name)
        copied = connection.backend.indexes(connection._cursor(), copy.database, original.table_name)
        assert sorted(indexes) == sorted(copied)
    copied_edges = connection.dependencies.parents((copy.database, "session"))
    assert {(e.parent[1], tuple(e.attr_map.items())) for e in copied_edges} == {
        ("subject", (("subject_id", "subject_id"),)), ("subject", (("experimenter_id", "subject_id"),)),
        ("#kind", (("kind", "kind"),))}


def test_spawn_missing_classes(db):
    spawned: dict = {}
    again = dj.schema(db.schema.database)
    again.spawn_missing_classes(context=spawned)
    assert {"Subject", "Kind", "Session", "Scan", "Summary"} <= set(spawned)
    assert issubclass(spawned["Subject"], dj.Manual)
    assert issubclass(spawned["Kind"], dj.Lookup)
    assert issubclass(spawned["Scan"], dj.Imported)
    assert issubclass(spawned["Summary"], dj.Computed)
    assert issubclass(spawned["Session"].Trial, dj.Part)
    assert spawned["Session"].Trial.master is spawned["Session"]
    assert spawned["Summary"].Detail.table_name == "__summary__detail"
    assert spawned["Session"].heading.names == db.Session.heading.names
    assert len(spawned["Session"]()) == len(db.Session())
    assert sorted(spawned["Kind"].fetch("kind")) == sorted(db.Kind.fetch("kind"))
    assert len(spawned["Session"].Trial & {"session": 1}) == len(db.Session.Trial & {"session": 1})
    # classes already in the context are kept, their parts too
    known = {"Session": db.Session}
    again.spawn_missing_classes(context=known)
    assert known["Session"] is db.Session and db.Session.Trial.definition.strip().startswith("-> master")
    assert issubclass(known["Subject"], dj.Manual) and known["Subject"] is not db.Subject


def test_list_schemas_and_drop(make_schema, backend):
    schema = make_schema("drop")

    @schema
    class Thing(dj.Manual):
        definition = """
        thing : int
        """

    assert schema.database in dj.list_schemas()
    Thing.insert1((1,))
    schema.drop(force=True)
    assert schema.database not in dj.list_schemas()
    assert not schema.exists
    schema.drop(force=True)  # dropping what is gone is a no-op


def test_drop_asks_in_safemode(make_schema, monkeypatch: pytest.MonkeyPatch):
    schema = make_schema("ask")

    @schema
    class Thing(dj.Manual):
        definition = """
        thing : int
        """

    answers = iter(["no", "yes"])
    monkeypatch.setattr(table_module, "_interactive", lambda: True)
    monkeypatch.setattr(sys.modules["dj_flows.schema"], "_interactive", lambda: True)
    monkeypatch.setattr(builtins, "input", lambda prompt: next(answers))
    with dj.config(safemode=True):
        schema.drop()
        assert schema.exists and Thing.is_declared
        schema.drop()
        assert not schema.exists


def test_cross_schema_dependents_block_a_schema_drop(db):
    with pytest.raises(DataJointError, match="subject"):
        db.upstream_schema.drop(force=True)
    assert db.upstream_schema.exists


def test_create_tables_false_refuses_undeclared(make_schema):
    name = make_schema("ro").database
    readonly = dj.Schema(name, create_tables=False)
    with pytest.raises(DataJointError, match="not declared"):

        @readonly
        class Missing(dj.Manual):
            definition = """
            x : int
            """


def test_part_tables_are_declared_with_their_master(db):
    with pytest.raises(DataJointError, match="master"):
        db.schema(type("Loose", (dj.Part,), {"definition": "-> Subject\nx : int"}))
    with pytest.raises(DataJointError, match="master"):
        db.Session.Trial.drop()


def test_undecorated_class_is_reported(db):
    class Orphan(dj.Manual):
        definition = """
        x : int
        """

    with pytest.raises(DataJointError, match="Orphan.*schema"):
        Orphan()
    with pytest.raises(DeclarationError, match="Nowhere"):

        @db.schema
        class Dangling(dj.Manual):
            definition = """
            -> Nowhere
            x : int
            """
    assert "dangling" not in db.schema.list_tables()


def test_describe_unique_and_nullable_references(make_schema):
    schema = make_schema("uq")

    @schema
    class Badge(dj.Manual):
        definition = """
        badge : int
        """

    @schema
    class Holder(dj.Manual):
        definition = """
        holder : int
        ---
        -> [unique] Badge
        -> [nullable, unique] Badge.proj(spare='badge')
        index (holder, spare)
        """

    text = Holder.describe()
    assert "-> [unique] Badge\n" in text
    assert "-> [nullable, unique] Badge.proj(spare='badge')\n" in text
    assert "index (holder, spare)" in text
    Badge.insert([(1,), (2,)])
    Holder.insert1({"holder": 1, "badge": 1})
    Holder.insert1({"holder": 2, "badge": 2})  # several NULL spares are fine
    with pytest.raises(DuplicateError):
        Holder.insert1({"holder": 3, "badge": 1})
