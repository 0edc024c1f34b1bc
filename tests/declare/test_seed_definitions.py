"""The seed notebook's four definitions parse to the tables DataJoint 0.14 would create."""

from __future__ import annotations

import pytest

from dj_flows.declare import ForeignKeySpec, IndexSpec

from .catalog import Catalog

TEST = """
    # Test blob and attachments
    id : int
    ---
    b0 : longblob       # a python object stored internally in the table
    b1 : blob@shared    # a python object stored on S3
    b2 : blob@local     # a python object store on the file system
    a0 : attach         # a file attachment stored internally in the table
    a1 : attach@shared  # a file attachment stored on s3
    a2 : attach@local   # a file attachment stored on the file system
    """

WEB_IMAGE = """
    # A reference to a web image
    image_number : int
    ---
    image_name : varchar(30)
    image_description : varchar(1024)
    image_url : varchar(1024)

    unique index(image_name)
    """

ORIGINAL_FILE = """
    -> WebImage
    ---
    image_file : attach@shared
    """

SLIDE = """
    -> OriginalFile
    ---
    image_array : blob@local  # array in specified store
    """


@pytest.fixture
def catalog() -> Catalog:
    return Catalog("seed_db")


def test_test_table_blobs_and_attachments(catalog: Catalog) -> None:
    spec = catalog.parse(TEST, "test")
    assert spec.table == "test"
    assert spec.comment == "Test blob and attachments"
    assert spec.primary_key == ["id"]
    assert [a.name for a in spec.attributes] == ["id", "b0", "b1", "b2", "a0", "a1", "a2"]
    columns = {a.name: (a.sql_type, a.store, a.mysql_comment) for a in spec.attributes}
    assert columns == {
        "id": ("int", None, ""),
        "b0": ("longblob", None, "a python object stored internally in the table"),
        "b1": ("binary(16)", "shared", ":blob@shared:a python object stored on S3"),
        "b2": ("binary(16)", "local", ":blob@local:a python object store on the file system"),
        "a0": ("longblob", None, ":attach:a file attachment stored internally in the table"),
        "a1": ("binary(16)", "shared", ":attach@shared:a file attachment stored on s3"),
        "a2": ("binary(16)", "local", ":attach@local:a file attachment stored on the file system"),
    }
    assert all(not a.nullable and a.default is None for a in spec.attributes)
    assert spec.foreign_keys == () and spec.indexes == ()
    heading = spec.heading
    assert heading.table_comment == "Test blob and attachments"
    assert heading.blobs == ["b0", "b1", "b2", "a0", "a1", "a2"]
    assert heading.non_blobs == ["id"]


def test_web_image_unique_index(catalog: Catalog) -> None:
    spec = catalog.parse(WEB_IMAGE, "#web_image")
    assert spec.comment == "A reference to a web image"
    assert spec.primary_key == ["image_number"]
    assert [(a.name, a.sql_type) for a in spec.attributes] == [
        ("image_number", "int"),
        ("image_name", "varchar(30)"),
        ("image_description", "varchar(1024)"),
        ("image_url", "varchar(1024)"),
    ]
    assert spec.indexes == (IndexSpec(("image_name",), True),)


def test_pipeline_chain_original_file_and_slide(catalog: Catalog) -> None:
    catalog.declare("WebImage", "#web_image", WEB_IMAGE)
    original = catalog.declare("OriginalFile", "_original_file", ORIGINAL_FILE)
    assert original.primary_key == ["image_number"]
    assert original.attributes[0].sql_type == "int" and original.attributes[0].in_key
    assert original.attributes[1].mysql_comment == ":attach@shared:"
    assert original.foreign_keys == (
        ForeignKeySpec(
            "seed_db", "#web_image", {"image_number": "image_number"}, True, False, False
        ),
    )
    assert original.comment == ""

    slide = catalog.declare("Slide", "__slide", SLIDE)
    assert slide.primary_key == ["image_number"]
    assert [a.name for a in slide.attributes] == ["image_number", "image_array"]
    assert slide.attributes[1].mysql_comment == ":blob@local:array in specified store"
    assert slide.foreign_keys[0].parent_table == "_original_file"
    assert catalog.lookups == ["WebImage", "OriginalFile"]
