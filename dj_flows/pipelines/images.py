"""The seed notebook's image pipeline as a reusable module: WebImage -> OriginalFile -> Slide.

    WebImage      Lookup    image_number; name, description and URL of an image
    OriginalFile  Imported  the downloaded file, attached in the store 'shared'  (attach@shared)
    Slide         Computed  the decoded pixel array, in the store 'local'       (blob@local)

The definitions are the notebook's, so a DataJoint 0.14 client reads the same tables. Unlike the
notebook, WebImage has no fixed `contents`: the catalog is data (bundled samples served over
loopback HTTP offline, the notebook's Wikimedia URLs online), loaded with `load_catalog()`.

`activate(schema_name)` returns the classes bound to that schema on the calling thread's connection
(cached per connection), so Prefect tasks on different threads each get their own.

OriginalFile uses the three-part make: the download runs outside the transaction (on SQLite a
transaction holds the file's write lock, so a slow server would stall every other writer), and
the bytes are re-checked under the transaction only through the URL they came from.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import Schema
from ..tiers import Computed, Imported, Lookup
from . import activator

MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 30.0

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

def _download(url: str, folder: str) -> str:
    # imported here: the Prefect layer owns the downloader; the engine never imports Prefect
    from ..prefect.download import download

    return download(
        url, folder, max_bytes=MAX_DOWNLOAD_BYTES, timeout=DOWNLOAD_TIMEOUT_SECONDS
    )


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Pixels of an image file as an array (H x W, or H x W x channels), decoded with Pillow."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode not in ("L", "RGB", "RGBA", "I;16", "I", "F"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        return np.asarray(image).copy()


def _define(schema: Schema) -> dict[str, type]:
    """Declare (if missing) and return the three tables bound to `schema`."""

    class WebImage(Lookup):
        definition = WEB_IMAGE

    class OriginalFile(Imported):
        definition = ORIGINAL_FILE

        def make_fetch(self, key: dict) -> list[str]:
            return [(WebImage & key).fetch1("image_url")]

        def make_compute(self, key: dict, url: str) -> list[Any]:
            with tempfile.TemporaryDirectory(prefix="djflows-download-") as folder:
                path = Path(_download(url, folder))
                return [path.name, path.read_bytes()]

        def make_insert(self, key: dict, name: str, data: bytes) -> None:
            with tempfile.TemporaryDirectory(prefix="djflows-attach-") as folder:
                path = Path(folder) / name
                path.write_bytes(data)
                self.insert1(dict(key, image_file=str(path)))

    class Slide(Computed):
        definition = SLIDE

        def make(self, key: dict) -> None:
            with tempfile.TemporaryDirectory(prefix="djflows-slide-") as folder:
                path = (OriginalFile & key).fetch1("image_file", download_path=folder)
                self.insert1(dict(key, image_array=decode_image(path)))

    context: dict[str, Any] = {}
    for cls in (WebImage, OriginalFile, Slide):
        context[cls.__name__] = cls
        schema(cls, context=context)
    return dict(context)


activate = activator(_define)
"""`activate(schema_name, connection=None)`: the three classes bound to a schema."""


def load_catalog(classes: Mapping[str, type], entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Insert catalog entries into WebImage; returns counts of inserted, updated and kept rows.

    `classes` is what `activate()` returned. An existing entry keeps its row; its URL is refreshed
    only while its file is not yet downloaded (the demo's loopback server gets a new port on every
    run), never once OriginalFile holds it.
    """
    web_image, original = classes["WebImage"], classes["OriginalFile"]
    names = ("image_number", "image_name", "image_description", "image_url")
    counts = {"inserted": 0, "updated": 0, "kept": 0}
    for entry in entries:
        row = {name: entry[name] for name in names}
        key = {"image_number": row["image_number"]}
        existing = (web_image & key).fetch("image_url")
        if len(existing) == 0:
            web_image.insert1(row)
            counts["inserted"] += 1
        elif existing[0] != row["image_url"] and not (original & key):
            web_image.update1(row)  # the whole row: update1 of some attributes only fails (engine)
            counts["updated"] += 1
        else:
            counts["kept"] += 1
    return counts


def contact_sheet(
    classes: Mapping[str, type],
    path: str | os.PathLike,
    *,
    restriction: Any = None,
    thumb: int = 240,
    columns: int = 4,
) -> dict[str, Any]:
    """Draw every Slide (thumbnails with their image names) into one PNG; returns where and what.

    Only the decoded arrays from the 'local' store are used, so the sheet shows what the pipeline
    computed, not the original files.
    """
    from PIL import Image, ImageDraw

    query = classes["WebImage"] * classes["Slide"]
    if restriction is not None:
        query = query & restriction
    numbers, names, arrays = query.fetch(
        "image_number", "image_name", "image_array", order_by="image_number"
    )
    if len(arrays) == 0:
        raise ValueError("no slides to draw: populate Slide first")
    label = 18
    columns = max(1, min(columns, len(arrays)))
    rows = -(-len(arrays) // columns)
    sheet = Image.new("RGB", (columns * (thumb + 8) + 8, rows * (thumb + label + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (name, array) in enumerate(zip(names, arrays)):
        tile = _to_image(array)
        tile.thumbnail((thumb, thumb))
        x = 8 + (index % columns) * (thumb + 8)
        y = 8 + (index // columns) * (thumb + label + 8)
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
        draw.text((x, y + thumb + 3), str(name), fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return {
        "path": str(path.resolve()),
        "slides": len(arrays),
        "image_numbers": [int(n) for n in numbers],
        "size": list(sheet.size),
    }


def _to_image(array: np.ndarray) -> Any:
    """An RGB Pillow image of a decoded slide (grey, RGB, RGBA, 16-bit or float)."""
    from PIL import Image

    data = np.asarray(array)
    if data.dtype != np.uint8:
        low, high = float(np.nanmin(data)), float(np.nanmax(data))
        scale = 255.0 / (high - low) if high > low else 0.0
        data = ((np.nan_to_num(data, nan=low) - low) * scale).astype(np.uint8)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim == 3 and data.shape[2] == 4:
        return Image.fromarray(data, "RGBA").convert("RGB")
    return Image.fromarray(data).convert("RGB")
