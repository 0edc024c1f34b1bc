"""The seed notebook's cells from "Configure stores" to "Caching" and "Deleting", as written.

Run on SQLite and on MariaDB, with the 'shared' store on the S3 test server and 'local' in a
folder. The only departures from the notebook are the ones an offline test needs: the S3 endpoint,
bucket and keys are the test server's; the schema name is unique; the web images are the bundled
samples served over loopback HTTP (urllib instead of requests, Pillow instead of imageio); display
cells (Image, plt.imshow, %%timeit) are replaced by the checks they invite the reader to make.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

import dj_flows as dj
from dj_flows import samples
from dj_flows.testing.http_server import LoopbackHTTPServer

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def web():
    """The notebook's two web images, served from the bundled samples."""
    with LoopbackHTTPServer(samples.FOLDER) as server:
        yield {item["image_number"]: item for item in samples.bundled()[:2]}, server


def test_seed_notebook(backend, make_schema, s3_server, web, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    bucket = s3_server.new_bucket("datajoint-demo")
    images, http = web

    # ## Configure stores
    dj.config["stores"] = {
        "shared": dict(
            protocol="s3",
            endpoint=s3_server.endpoint,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
            bucket=bucket,
            location="",
        ),
        "local": {  # store in files
            "protocol": "file",
            "location": os.path.abspath("./dj-store"),
        },
    }
    assert dj.config["stores"]["local"]["protocol"] == "file"
    assert s3_server.secret_key not in repr(dj.config)  # the notebook shows dj.config

    # create a schema for this demo (then: drop if exists to create anew)
    schema = make_schema("attach")
    name = schema.database
    schema.drop()
    schema = dj.schema(name)

    # # A Minimal example of blobs and configurable blobs
    @schema
    class Test(dj.Manual):
        definition = """
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

    q0, q1, q2 = np.random.randn(3, 4), np.random.randn(7), np.random.randn(2, 3, 4)
    f0, f1, f2 = "./outfile0.npy", "./outfile1.npy", "./outfile2.npy"
    np.save(f0, q0)
    np.save(f1, q1)
    np.save(f2, q2)
    Test.delete()
    Test.insert1(dict(id=1, b0=q0, b1=q1, b2=q2, a0=f0, a1=f1, a2=f2))
    shown = repr(Test())
    assert "=BLOB=" in shown and "Total: 1" in shown

    os.remove(f0)
    os.remove(f1)
    os.remove(f2)
    result = Test.fetch(as_dict=True)
    assert np.array_equal(q0, result[0]["b0"])
    assert np.array_equal(q1, result[0]["b1"]) and np.array_equal(q2, result[0]["b2"])
    assert os.path.basename(result[0]["a1"]) == "outfile1.npy"
    assert np.array_equal(np.load(result[0]["a1"]), q1)
    assert np.array_equal(np.load(result[0]["a0"]), q0)
    assert np.array_equal(np.load(result[0]["a2"]), q2)

    mapping = repr(schema.external)
    assert f"External file tables for schema `{name}`" in mapping
    assert '"shared"' in mapping and '"local"' in mapping and s3_server.secret_key not in mapping
    for store in ("local", "shared"):
        text = repr(schema.external[store])
        assert "hash" in text and "attachment_nam" in text and "Total: 2" in text
        assert "outfile" in text
    local_paths = schema.external["local"].fetch_external_paths()
    shared_paths = schema.external["shared"].fetch_external_paths()
    assert len(local_paths) == len(shared_paths) == 2
    for _, path in local_paths:
        assert os.path.isfile(path)  # the file store's paths are real files
    fs = s3_server.filesystem()
    for _, path in shared_paths:
        assert fs.exists(f"{bucket}/{path}")
    assert len(schema.external["shared"].used()) == 2
    assert len(schema.external["local"].used()) == 2
    assert len(schema.external["shared"].unused()) == 0

    Test.delete()
    assert len(schema.external["shared"]) == 2  # deleting rows leaves the objects tracked
    assert len(schema.external["shared"].unused()) == 2
    schema.external["shared"].delete(delete_external_files=True)
    assert len(schema.external["shared"]) == 0
    assert not [p for _, p in shared_paths if fs.exists(f"{bucket}/{p}")]
    # complete cleanup of all external stores
    for s in schema.external.values():
        s.delete(delete_external_files=True)
    assert not [p for _, p in local_paths if os.path.exists(p)]

    # ## Lookup of images on the web
    @schema
    class WebImage(dj.Lookup):
        definition = """
        # A reference to a web image
        image_number : int
        ---
        image_name : varchar(30)
        image_description : varchar(1024)
        image_url : varchar(1024)

        unique index(image_name)
        """
        contents = [
            (n, item["image_name"], item["image_description"], http.url_for(item["filename"]))
            for n, item in images.items()
        ]

    assert len(WebImage()) == 2

    # ## Define a table with attachments
    @schema
    class OriginalFile(dj.Imported):
        definition = """
        -> WebImage
        ---
        image_file : attach@shared
        """

        def make(self, key):
            # get the URL
            url = (WebImage & key).fetch1("image_url")
            # download the file from the web
            local_file = os.path.join(os.path.abspath("."), url.split("/")[-1])
            with open(local_file, "wb") as f, urllib.request.urlopen(url) as response:
                f.write(response.read())
            # attach the file
            self.insert1(dict(key, image_file=local_file))
            # delete the downloaded file
            os.remove(local_file)

    assert "OriginalFile" in dj.Diagram(schema).make_mermaid()
    OriginalFile.populate()
    assert len(OriginalFile()) == 2
    # preview downloaded attachment
    file = (OriginalFile & "image_number=1").fetch1("image_file")
    assert os.path.basename(file) == images[1]["filename"]
    with open(samples.path(images[1]["filename"]), "rb") as original:
        assert open(file, "rb").read() == original.read()
    assert Image.open(file).size[0] > 0
    os.remove(file)

    # ## Extract images into blobs
    @schema
    class Slide(dj.Computed):
        definition = """
        -> OriginalFile
        ---
        image_array : blob@local  # array in specified store
        """

        def make(self, key):
            # get the attached file
            file = (OriginalFile & key).fetch1("image_file")
            # save image data
            self.insert1(dict(key, image_array=np.asarray(Image.open(file))))
            # remove the downloaded file
            os.remove(file)

    Slide.populate()
    assert len(Slide()) == 2
    assert "image_array" in repr(Slide())
    assert "local" in repr(schema.external) and len(schema.external["local"]) == 2
    image = (Slide & "image_number=0").fetch1("image_array")
    expected = np.asarray(Image.open(samples.path(images[0]["filename"])))
    assert image.dtype == np.uint8 and np.array_equal(image, expected)

    # ## Caching
    dj.config["cache"] = "./dj-cache"
    if os.path.isdir(dj.config["cache"]):
        shutil.rmtree(dj.config["cache"])
    start = time.perf_counter()
    files = OriginalFile.fetch("image_file")  # first time no cache
    first = time.perf_counter() - start
    assert sorted(os.path.basename(f) for f in files) == sorted(
        i["filename"] for i in images.values()
    )
    assert len(_files("./dj-cache")) == 2  # both attachments are now in the cache, by hash
    for f in files:
        os.remove(f)
    saved = {path: fs.cat_file(path) for path in fs.find(bucket)}
    fs.rm(list(saved))  # the cache alone must now serve them (and verify them)
    start = time.perf_counter()
    files = OriginalFile.fetch("image_file")  # now with cache
    second = time.perf_counter() - start
    assert all(os.path.isfile(f) for f in files) and first > 0 and second > 0
    for f in files:
        with open(samples.path(os.path.basename(f)), "rb") as original:
            assert open(f, "rb").read() == original.read()
    fs.pipe(saved)  # put the objects back

    # ## Deleting
    assert '"shared"' in repr(schema.external)
    assert len(schema.external["shared"].unused()) == 0
    (WebImage & "image_number=0").delete()
    assert len(schema.external["shared"].unused()) == 1
    schema.external["local"].delete(delete_external_files=True)
    schema.external["shared"].delete(delete_external_files=True)
    for s in schema.external.values():
        s.delete(delete_external_files=True)
    assert len(schema.external["shared"].used()) == 1
    assert len(schema.external["shared"].unused()) == 0
    dj.config["cache"] = None


def _files(folder: str) -> list[str]:
    found = []
    for parent, _, names in os.walk(folder):
        found += [os.path.join(parent, n) for n in names if not n.startswith(".")]
    return found
