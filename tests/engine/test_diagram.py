"""The dependency graph across schemas and the diagram drawn from it: Mermaid text always, SVG/PNG
through Graphviz `dot` when it is installed (and a plain error naming Graphviz when it is not)."""

from __future__ import annotations

import shutil
import types

import pytest

import dj_flows as dj
from dj_flows.errors import DataJointError


@pytest.fixture(scope="module")
def db(make_schema):
    lab = make_schema("lab")
    exp = make_schema("exp")

    @lab
    class Person(dj.Lookup):
        definition = """
        person : varchar(12)
        """
        contents = [("ann",)]

    upstream = types.ModuleType("upstream")
    upstream.Person = Person

    @exp
    class Animal(dj.Manual):
        definition = """
        animal : int
        ---
        -> upstream.Person.proj(owner='person')
        """

    @exp
    class Session(dj.Manual):
        definition = """
        -> Animal
        session : int
        ---
        -> upstream.Person
        """

        class Note(dj.Part):
            definition = """
            -> master
            note : int
            """

    @exp
    class Spikes(dj.Imported):
        definition = """
        -> Session
        """

        def make(self, key):
            self.insert1(key)

    @exp
    class Rate(dj.Computed):
        definition = """
        -> Spikes
        ---
        rate : float
        """

        def make(self, key):
            self.insert1(dict(key, rate=1.0))

    return types.SimpleNamespace(lab=lab, exp=exp, Person=Person, Animal=Animal, Session=Session,
                                 Spikes=Spikes, Rate=Rate)


def test_graph_across_schemas(db):
    connection = db.exp.connection
    connection.invalidate()
    graph = connection.dependencies
    person = (db.lab.database, "#person")
    animal, session = (db.exp.database, "animal"), (db.exp.database, "session")
    children = {(e.child, tuple(e.attr_map.items())) for e in graph.children(person)}
    assert children == {(animal, (("owner", "person"),)), (session, (("person", "person"),))}
    assert {e.parent for e in graph.parents(session)} == {person, animal}
    descendants = graph.descendants(person)
    assert descendants[0] == person
    assert set(descendants) == {person, animal, session, (db.exp.database, "session__note"),
                                (db.exp.database, "_spikes"), (db.exp.database, "__rate")}
    assert descendants.index(animal) < descendants.index(session) < descendants.index((db.exp.database, "__rate"))
    ancestors = graph.ancestors((db.exp.database, "__rate"))
    assert ancestors[-1] == (db.exp.database, "__rate") and ancestors[0] in (person, animal)
    assert db.Rate.ancestors()[-1].endswith("__rate")
    assert f"{db.exp.database}.animal" in db.Person.children()


def test_mermaid_of_a_schema(db):
    text = dj.Diagram(db.exp).make_mermaid()
    assert text.startswith("flowchart TD\n")
    for label, tier in [("Animal", "manual"), ("Session", "manual"), ("Session.Note", "part"),
                        ("Spikes", "imported"), ("Rate", "computed")]:
        assert f'"{label}"' in text and f":::{tier}" in text
    assert "Person" not in text  # another schema's table is not drawn unless added
    assert text.count("-->") == 4  # animal->session, session->note, session->spikes, spikes->rate
    assert "classDef computed" in text
    assert repr(dj.Diagram(db.exp)) == text
    assert dj.Diagram(db.exp)._repr_markdown_().startswith("```mermaid\n")


def test_mermaid_across_schemas_shows_renames_and_secondary_edges(db):
    diagram = dj.Diagram(db.lab) + dj.Diagram(db.exp)
    text = diagram.make_mermaid()
    assert f'"{db.lab.database}.Person"' in text and f'"{db.exp.database}.Animal"' in text
    assert "-.->|owner=person|" in text  # a renamed, secondary reference
    assert text.count("-.->") == 2  # person -> animal (owner) and person -> session (secondary)
    assert dj.ERD is dj.Diagram and dj.Di is dj.Diagram


def test_diagram_arithmetic(db):
    around = dj.Diagram(db.Session)
    assert around.nodes == {(db.exp.database, "session")}
    down = dj.Diagram(db.Session) + 1
    assert down.nodes == {(db.exp.database, n) for n in ("session", "session__note", "_spikes")}
    up = dj.Diagram(db.Session) - 1
    assert up.nodes == {(db.exp.database, "session"), (db.exp.database, "animal"), (db.lab.database, "#person")}
    assert (dj.Diagram(db.exp) - dj.Diagram(db.Rate)).nodes == dj.Diagram(db.exp).nodes - {(db.exp.database, "__rate")}
    with pytest.raises(DataJointError, match="schema or a table"):
        dj.Diagram("not a schema")


def test_node_ids_keep_tiers_apart(db):
    lookup, imported = dj.Diagram._id(("s", "#kind")), dj.Diagram._id(("s", "_kind"))
    assert lookup != imported and lookup.isidentifier() and imported.isidentifier()


def test_save_text_formats(db, tmp_path):
    diagram = dj.Diagram(db.exp)
    diagram.save(str(tmp_path / "d.mmd"))
    assert (tmp_path / "d.mmd").read_text() == diagram.make_mermaid()
    diagram.save(str(tmp_path / "d.dot"))
    dot = (tmp_path / "d.dot").read_text()
    assert dot.startswith("digraph") and "style=dashed" not in dot and "->" in dot
    with pytest.raises(DataJointError, match="unsupported diagram format"):
        diagram.save(str(tmp_path / "d.xyz"))


@pytest.mark.skipif(shutil.which("dot") is not None, reason="Graphviz is installed here")
def test_images_need_graphviz(db, tmp_path):
    with pytest.raises(DataJointError, match="Graphviz 'dot' is not installed"):
        dj.Diagram(db.exp).render("svg")
    with pytest.raises(DataJointError, match="Graphviz"):
        dj.Diagram(db.exp).save(str(tmp_path / "d.png"))
    assert dj.Diagram(db.exp)._repr_svg_() is None


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed (apt-get install graphviz)")
def test_images_with_graphviz(db, tmp_path):
    svg = dj.Diagram(db.exp).render("svg")
    assert b"<svg" in svg and b"Session" in svg
    dj.Diagram(db.exp).save(str(tmp_path / "d.png"))
    assert (tmp_path / "d.png").read_bytes().startswith(b"\x89PNG")
    assert "<svg" in dj.Diagram(db.exp)._repr_svg_()
