"""Bundled sample images (synthetic neurons) and their catalog, for offline demos and tests.

`catalog.json` lists the 'bundled' images in this folder (made by scripts/make_sample_images.py)
and the seed notebook's two 'web' images on Wikimedia, for machines that have internet access.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

FOLDER = Path(str(resources.files(__name__)))


def catalog() -> dict[str, Any]:
    """The whole catalog: {'about': ..., 'bundled': [...], 'web': [...]}."""
    return json.loads((FOLDER / "catalog.json").read_text())


def bundled() -> list[dict[str, Any]]:
    """Entries with image_number, image_name, image_description, filename, size, sha256."""
    return catalog()["bundled"]


def web() -> list[dict[str, Any]]:
    """The seed notebook's entries: image_number, image_name, image_description, image_url."""
    return catalog()["web"]


def path(filename: str) -> Path:
    """Local path of a bundled file."""
    found = FOLDER / filename
    if found.parent != FOLDER or not found.is_file():
        raise FileNotFoundError(f"no bundled sample named {filename!r}")
    return found
