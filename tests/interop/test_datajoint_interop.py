"""Two-way compatibility with DataJoint 0.14.10 on MariaDB/MySQL.

1. A schema this engine declares and fills is seen by a DataJoint 0.14.10 client (through
   `dj.VirtualModule`, i.e. its own spawn_missing_classes): headings, primary keys, types, defaults,
   comments, fetched values (blobs, attachments, uuid, json included), parents and children; and
   DataJoint can keep working in it (insert, cascade delete).
2. A schema DataJoint declares and fills is read by this engine (our spawn_missing_classes) with the
   same headings, values and dependencies, and our inserts and deletes work in it.
"""

from __future__ import annotations

import datetime
import decimal
import json
import types
import uuid
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

import dj_flows
from dj_flows.connection import CONNECTION_KEYS
from tests.support.backends import mysql_settings, require_mysql, unique_name

pytestmark = [pytest.mark.interop, pytest.mark.mysql, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

U1, U2 = uuid.UUID("11111111-2222-3333-4444-555555555555"), uuid.UUID("99999999-8888-7777-6666-555555555555")
ARRAY = np.arange(24, dtype=np.float64).reshape(4, 6)
NESTED = {"a": 1, "b": [1.5, "two"], "c": np.array([1, 2, 3], dtype=np.int32)}

# One pipeline, declared once by each library; `Upstream` stands for a module of parent tables.
DEFINITIONS = {
    "Lab": """
    # research group
    lab : varchar(16)      # short name
    ---
    city = "unknown" : varchar(40)
    """,
    "Subject": """
    # an animal
    subject_id : int unsigned
    ---
    -> Lab
    sex : enum('F', 'M', 'U')
    dob = null : date
    weight : decimal(6,2)  # grams
    tag : uuid
    info = null : json
    added = CURRENT_TIMESTAMP : timestamp
    unique index (tag)
    """,
    "Session": """
    -> Subject
    session : smallint
    ---
    -> [nullable] Subject.proj(buddy='subject_id')
    started : datetime
    duration : float
    """,
    "Trial": """
    -> master
    trial : int
    ---
    signal : longblob
    """,
    "Summary": """
    -> Session
    ---
    n_trials : int
    mean_signal = null : double
    report = null : attach
    """,
}


def _rows(tmp_path) -> dict[str, list[dict]]:
    report = tmp_path / "report.txt"
    report.write_bytes(b"summary report\x00\x01 bytes")
    return {
        "Lab": [{"lab": "alpha", "city": "Paris"}, {"lab": "beta"}],
        "Subject": [
            {"subject_id": 1, "lab": "alpha", "sex": "F", "dob": datetime.date(2020, 1, 2),
             "weight": decimal.Decimal("21.50"), "tag": U1, "info": {"strain": "C57", "ids": [1, 2]}},
            {"subject_id": 2, "lab": "beta", "sex": "M", "weight": 30, "tag": U2},
        ],
        "Session": [
            {"subject_id": 1, "session": 1, "started": datetime.datetime(2024, 5, 6, 7, 8, 9), "duration": 1.5},
            {"subject_id": 1, "session": 2, "buddy": 2, "started": datetime.datetime(2024, 5, 7), "duration": 2.25},
            {"subject_id": 2, "session": 1, "started": datetime.datetime(2024, 6, 1, 12), "duration": 0.5},
        ],
        "Trial": [
            {"subject_id": 1, "session": 1, "trial": 0, "signal": ARRAY},
            {"subject_id": 1, "session": 1, "trial": 1, "signal": NESTED},
            {"subject_id": 2, "session": 1, "trial": 0, "signal": "text blob"},
        ],
        "Summary": [
            {"subject_id": 1, "session": 1, "n_trials": 2, "mean_signal": 11.5, "report": str(report)},
            {"subject_id": 2, "session": 1, "n_trials": 1},
        ],
    }


@pytest.fixture(scope="module")
def ours_config() -> Iterator[None]:
    require_mysql()
    saved = {key: dj_flows.config[key] for key in (*CONNECTION_KEYS, "safemode")}
    dj_flows.config.update(mysql_settings())
    dj_flows.config["safemode"] = False
    yield
    dj_flows.config.update(saved)


@pytest.fixture
def datajoint(ours_config) -> Iterator[types.ModuleType]:
    """DataJoint 0.14.10 with a fresh connection for each test."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import datajoint

    settings = mysql_settings()
    datajoint.config.update({
        "database.host": f"{settings['database.host']}:{settings['database.port']}",
        "database.user": settings["database.user"],
        "database.password": settings["database.password"],
        "database.use_tls": False,
        "safemode": False,
        "loglevel": "WARNING",
    })
    connection = datajoint.conn(reset=True)
    yield datajoint
    connection.close()


def _declare(lib, schema, upstream_schema) -> dict[str, type]:
    """Declare the pipeline with `lib` (dj_flows or datajoint): Lab in `upstream_schema`, the rest in
    `schema`, Trial as Session's part, Summary computed."""
    lab = type("Lab", (lib.Lookup,), {"definition": DEFINITIONS["Lab"]})
    upstream_schema(lab, context={})
    upstream = types.ModuleType("upstream")
    upstream.Lab = lab
    context: dict = {"upstream": upstream, "Lab": lab}
    subject = type("Subject", (lib.Manual,), {"definition": DEFINITIONS["Subject"]})
    schema(subject, context=context)
    context["Subject"] = subject
    trial = type("Trial", (lib.Part,), {"definition": DEFINITIONS["Trial"]})
    session = type("Session", (lib.Manual,), {"definition": DEFINITIONS["Session"], "Trial": trial})
    schema(session, context=context)
    context["Session"] = session
    summary = type("Summary", (lib.Computed,), {"definition": DEFINITIONS["Summary"], "make": lambda self, key: None})
    schema(summary, context=context)
    return {"Lab": lab, "Subject": subject, "Session": session, "Trial": trial, "Summary": summary}


def _fill(classes: dict[str, type], rows: dict[str, list[dict]], json_as_text: bool = False) -> None:
    """`json_as_text`: DataJoint 0.14 on MariaDB does not know the column is json (see below), so it
    is given the JSON text."""
    for name in ("Lab", "Subject", "Session", "Trial"):
        for row in rows[name]:  # one by one: DataJoint wants the same fields in every row of a batch
            if json_as_text and row.get("info") is not None:
                row = dict(row, info=json.dumps(row["info"]))
            classes[name].insert1(row)
    for row in rows["Summary"]:
        classes["Summary"].insert1(row, allow_direct_insert=True)


def _check_values(fetch_rows, download: str, json_as_text: bool = False) -> None:
    """The rows of every table as either library fetches them (fetch_rows(name) -> list of dicts).
    `json_as_text`: DataJoint 0.14 on MariaDB sees a json column as the longtext it is stored in
    (MariaDB's json is an alias with a CHECK), so it returns the JSON text undecoded."""
    subjects = {r["subject_id"]: r for r in fetch_rows("Subject", download)}
    if json_as_text:
        for row in subjects.values():
            row["info"] = None if row["info"] is None else json.loads(row["info"])
    assert subjects[1]["sex"] == "F" and subjects[1]["dob"] == datetime.date(2020, 1, 2)
    assert subjects[1]["weight"] == decimal.Decimal("21.50") and isinstance(subjects[1]["weight"], decimal.Decimal)
    assert subjects[1]["tag"] == U1 and subjects[2]["tag"] == U2
    assert subjects[1]["info"] == {"strain": "C57", "ids": [1, 2]} and subjects[2]["info"] is None
    assert subjects[2]["dob"] is None and subjects[2]["weight"] == 30
    assert isinstance(subjects[1]["added"], datetime.datetime)
    labs = {r["lab"]: r["city"] for r in fetch_rows("Lab", download)}
    assert labs == {"alpha": "Paris", "beta": "unknown"}
    sessions = {(r["subject_id"], r["session"]): r for r in fetch_rows("Session", download)}
    assert sessions[(1, 1)]["started"] == datetime.datetime(2024, 5, 6, 7, 8, 9)
    assert sessions[(1, 2)]["buddy"] == 2 and sessions[(1, 1)]["buddy"] is None
    assert sessions[(2, 1)]["duration"] == 0.5
    trials = {(r["subject_id"], r["trial"]): r["signal"] for r in fetch_rows("Trial", download)}
    np.testing.assert_array_equal(trials[(1, 0)], ARRAY)
    assert trials[(1, 1)]["a"] == 1 and trials[(1, 1)]["b"] == [1.5, "two"]
    np.testing.assert_array_equal(trials[(1, 1)]["c"], NESTED["c"])
    assert trials[(2, 0)] == "text blob"
    summaries = {r["subject_id"]: r for r in fetch_rows("Summary", download)}
    with open(summaries[1]["report"], "rb") as handle:
        assert handle.read() == b"summary report\x00\x01 bytes"
    assert str(summaries[1]["report"]).endswith("report.txt")
    assert summaries[2]["report"] is None and summaries[1]["mean_signal"] == 11.5


def _default(text: str | None) -> str | None:
    """A default as both libraries spell it: quotes and MariaDB's `current_timestamp()` aside."""
    if text is None or text == "":
        return None
    text = text.strip("\"'").lower()
    return "current_timestamp" if text.startswith("current_timestamp") else text


def _compare_headings(theirs, ours) -> None:
    """A DataJoint heading against ours: names, key, types, nullability, defaults, comments."""
    assert list(theirs.names) == ours.names
    assert list(theirs.primary_key) == ours.primary_key
    for name in ours.names:
        a, b = theirs.attributes[name], ours[name]
        assert a.type == b.type.declared or (a.type, b.type.declared) == ("longtext", "json"), name
        assert a.nullable == b.nullable, name
        assert a.comment == b.comment, name
        assert _default(a.default) == _default(b.default), (name, a.default, b.default)
    assert theirs.table_status["comment"] == ours.table_comment


def test_datajoint_reads_what_we_declared(datajoint, tmp_path):
    names = unique_name("djt_interop_ours"), unique_name("djt_interop_ours_up")
    upstream_schema = dj_flows.Schema(names[1])
    schema = dj_flows.Schema(names[0])
    try:
        ours = _declare(dj_flows, schema, upstream_schema)
        _fill(ours, _rows(tmp_path))

        theirs = datajoint.VirtualModule("theirs", names[0])
        their_lab = datajoint.VirtualModule("their_lab", names[1])
        assert {"Subject", "Session", "Summary"} <= set(vars(theirs))
        assert issubclass(theirs.Summary, datajoint.Computed) and issubclass(their_lab.Lab, datajoint.Lookup)
        assert theirs.Session.Trial.table_name == "session__trial"
        for name, cls in (("Subject", theirs.Subject), ("Session", theirs.Session), ("Trial", theirs.Session.Trial),
                          ("Summary", theirs.Summary), ("Lab", their_lab.Lab)):
            _compare_headings(cls.heading, ours[name].heading)
        assert theirs.Subject.heading.attributes["tag"].uuid
        mariadb = "mariadb" in schema.connection.query("SELECT version()").fetchone()[0].lower()
        assert theirs.Subject.heading.attributes["info"].json or mariadb
        assert theirs.Summary.heading.attributes["report"].is_attachment

        download = tmp_path / "theirs"
        download.mkdir()
        tables = {"Lab": their_lab.Lab, "Subject": theirs.Subject, "Session": theirs.Session,
                  "Trial": theirs.Session.Trial, "Summary": theirs.Summary}
        _check_values(lambda n, d: tables[n].fetch(as_dict=True, download_path=d), str(download), json_as_text=mariadb)

        assert set(theirs.Session.parents()) == {f"`{names[0]}`.`subject`"}
        assert set(theirs.Subject.parents()) == {f"`{names[1]}`.`#lab`"}
        assert set(theirs.Subject.children()) == {f"`{names[0]}`.`session`"}
        assert set(theirs.Session.children()) == {f"`{names[0]}`.`session__trial`", f"`{names[0]}`.`__summary`"}
        assert len(theirs.Session & (theirs.Subject & {"sex": "F"})) == 2

        # DataJoint keeps working in our schema: insert, then a cascading delete
        theirs.Session.insert1({"subject_id": 2, "session": 5, "started": "2024-07-01 00:00:00", "duration": 3.0})
        assert len(ours["Session"] & {"subject_id": 2}) == 2
        (theirs.Subject & {"subject_id": 2}).delete()
        assert len(ours["Subject"]()) == 1 and len(ours["Session"] & {"subject_id": 2}) == 0
        assert len(ours["Trial"]()) == 2 and len(ours["Summary"]()) == 1
    finally:
        schema.drop(force=True)
        upstream_schema.drop(force=True)


def test_we_read_what_datajoint_declared(datajoint, tmp_path):
    names = unique_name("djt_interop_dj"), unique_name("djt_interop_dj_up")
    their_upstream = datajoint.Schema(names[1])
    their_schema = datajoint.Schema(names[0])
    try:
        theirs = _declare(datajoint, their_schema, their_upstream)
        mariadb = "mariadb" in datajoint.conn().query("SELECT version()").fetchone()[0].lower()
        _fill(theirs, _rows(tmp_path), json_as_text=mariadb)

        spawned: dict = {}
        schema = dj_flows.Schema(names[0])
        schema.spawn_missing_classes(context=spawned)
        upstream: dict = {}
        dj_flows.Schema(names[1]).spawn_missing_classes(context=upstream)
        assert issubclass(spawned["Subject"], dj_flows.Manual) and issubclass(spawned["Summary"], dj_flows.Computed)
        assert issubclass(upstream["Lab"], dj_flows.Lookup)
        ours = {"Lab": upstream["Lab"], "Subject": spawned["Subject"], "Session": spawned["Session"],
                "Trial": spawned["Session"].Trial, "Summary": spawned["Summary"]}
        for name, cls in ours.items():
            _compare_headings(theirs[name].heading, cls.heading)
        assert ours["Subject"].heading["tag"].type.kind == "uuid"
        assert ours["Subject"].heading["info"].type.kind == "json"
        assert ours["Summary"].heading["report"].type.kind == "attach"
        assert ours["Subject"].heading["added"].default == "CURRENT_TIMESTAMP"

        download = tmp_path / "ours"
        download.mkdir()
        _check_values(lambda n, d: ours[n].fetch(as_dict=True, download_path=d), str(download))

        assert set(ours["Session"].parents()) == {f"{names[0]}.subject"}
        assert set(ours["Subject"].parents()) == {f"{names[1]}.#lab"}
        assert set(ours["Session"].children()) == {f"{names[0]}.session__trial", f"{names[0]}.__summary"}
        edges = schema.connection.dependencies.parents((names[0], "session"))
        assert {tuple(e.attr_map.items()) for e in edges} == {
            (("subject_id", "subject_id"),), (("buddy", "subject_id"),)}
        description = ours["Session"].describe(context={})
        assert "-> [nullable] Subject.proj(buddy='subject_id')" in description

        # our writes land in their tables, and DataJoint reads them back
        ours["Session"].insert1({"subject_id": 2, "session": 9, "started": datetime.datetime(2025, 1, 1), "duration": 9.0})
        ours["Trial"].insert1({"subject_id": 2, "session": 9, "trial": 0, "signal": ARRAY * 2})
        np.testing.assert_array_equal(
            (theirs["Trial"] & {"subject_id": 2, "session": 9}).fetch1("signal"), ARRAY * 2)
        (ours["Subject"] & {"subject_id": 1}).delete()
        assert len(theirs["Subject"]()) == 1
        assert len(theirs["Session"]()) == 2 and len(theirs["Trial"]()) == 2 and len(theirs["Summary"]()) == 1
    finally:
        datajoint.conn(reset=True)
        their_schema.drop(force=True)
        their_upstream.drop(force=True)
