"""Generate the bundled sample images and dj_flows/samples/catalog.json.

The seed notebook downloads two neuron pictures from Wikimedia; on an offline machine the demo serves
these synthetic stand-ins over loopback HTTP instead. They are drawn with numpy from fixed seeds (a
soma, branching dendrites, a faint second stain, sensor noise), so re-running the script gives the
same pixels; the files are committed as package data.

    python scripts/make_sample_images.py [--out dj_flows/samples]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "dj_flows" / "samples"
MAX_BYTES = 100 * 1024

# image_number, image_name, filename, (height, width), seed, soma colour, stain colour, description
SAMPLES = [
    (
        0,
        "pyramidal",
        "synthetic_pyramidal.jpg",
        (300, 400),
        11,
        (0.35, 1.0, 0.3),
        (1.0, 0.2, 0.15),
        "Synthetic stand-in for the pyramidal neuron image: a green cell with an apical dendrite "
        "and basal branches over a faint red stain.",
    ),
    (
        1,
        "striatal",
        "synthetic_striatal.jpg",
        (320, 320),
        23,
        (1.0, 0.9, 0.2),
        (0.2, 0.9, 0.3),
        "Synthetic stand-in for the striatal neuron image: a yellow spiny cell among green "
        "interneuron staining.",
    ),
    (
        2,
        "purkinje",
        "synthetic_purkinje.png",
        (240, 300),
        37,
        (0.9, 0.3, 1.0),
        (0.2, 0.4, 1.0),
        "Synthetic Purkinje-like cell: a magenta soma with a fan of dendrites over blue nuclei.",
    ),
    (
        3,
        "granule",
        "synthetic_granule.png",
        (256, 256),
        41,
        (0.2, 0.9, 1.0),
        (1.0, 0.5, 0.1),
        "Synthetic granule-cell field: small cyan cells with short dendrites over orange stain.",
    ),
]

WEB = [
    {
        "image_number": 0,
        "image_name": "pyramidal",
        "image_description": (
            'Coronal section containing the chronically imaged pyramidal neuron "dow" '
            "(visualized by green GFP) does not stain for GABA (visualized by antibody staining "
            "in red). Confocal image stack, overlay of GFP and GABA channels. Scale bar: 100 um"
        ),
        "image_url": (
            "https://upload.wikimedia.org/wikipedia/commons/d/dc/PLoSBiol4.e126.Fig6fNeuron.jpg"
        ),
    },
    {
        "image_number": 1,
        "image_name": "striatal",
        "image_description": (
            "Mouse spiny striatal projection neuron expressing a transgenic fluorescent protein "
            "(colored yellow) delivered by a recombinant virus (AAV). "
            "The striatal interneuron are stainerd in green for the neurokinin-1 receptor."
        ),
        "image_url": (
            "https://upload.wikimedia.org/wikipedia/commons/e/e8/"
            "Striatal_neuron_in_an_interneuron_cage.jpg"
        ),
    },
]


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array (numpy only)."""
    radius = int(3 * sigma) + 1
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = np.pad(image, radius, mode="reflect")
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def _dendrite(canvas: np.ndarray, rng: np.random.Generator, start, angle, length, width, depth):
    """Draw a wandering, tapering, branching line into `canvas` (in place)."""
    height, width_px = canvas.shape
    y, x = start
    for step in range(int(length)):
        angle += rng.normal(0, 0.12)
        y, x = y + np.sin(angle), x + np.cos(angle)
        if not (0 <= y < height and 0 <= x < width_px):
            return
        r = max(0.6, width * (1 - step / length))
        y0, y1 = int(max(0, y - r)), int(min(height, y + r + 1))
        x0, x1 = int(max(0, x - r)), int(min(width_px, x + r + 1))
        canvas[y0:y1, x0:x1] = np.maximum(canvas[y0:y1, x0:x1], 1.0)
        if rng.random() < 0.012 * depth:
            side = rng.choice((-1, 1)) * rng.uniform(0.4, 1.0)
            _dendrite(canvas, rng, (y, x), angle + side, (length - step) * 0.6, r * 0.8, depth - 1)
        if rng.random() < 0.08:  # spine
            sy, sx = int(y + rng.normal(0, 2)), int(x + rng.normal(0, 2))
            if 0 <= sy < height and 0 <= sx < width_px:
                canvas[sy, sx] = 1.0


def draw(shape, seed, soma_colour, stain_colour, cells: int, noise: float) -> np.ndarray:
    """One synthetic fluorescence picture as an RGB uint8 array."""
    rng = np.random.default_rng(seed)
    height, width = shape
    cell = np.zeros(shape)
    for index in range(cells):
        cy = rng.uniform(0.3, 0.7) * height if index == 0 else rng.uniform(0, height)
        cx = rng.uniform(0.3, 0.7) * width if index == 0 else rng.uniform(0, width)
        scale = 1.0 if index == 0 else 0.4
        yy, xx = np.ogrid[:height, :width]
        soma = ((yy - cy) ** 2 + (xx - cx) ** 2) < (9 * scale + 2) ** 2
        cell[soma] = 1.0
        for _ in range(rng.integers(4, 8)):
            _dendrite(
                cell,
                rng,
                (cy, cx),
                rng.uniform(0, 2 * np.pi),
                rng.uniform(60, 160) * scale,
                2.2 * scale + 0.5,
                depth=3,
            )
    cell = np.clip(_blur(cell, 1.2) * 1.6, 0, 1)
    stain = np.zeros(shape)
    for _ in range(60):
        y, x = rng.integers(0, height), rng.integers(0, width)
        stain[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = rng.uniform(0.3, 1.0)
    stain = np.clip(_blur(stain, 4.0) * 0.8, 0, 1)
    rgb = cell[..., None] * np.array(soma_colour) + stain[..., None] * np.array(stain_colour) * 0.6
    rgb += rng.normal(0, noise, rgb.shape)  # sensor noise (PNGs get none: it defeats compression)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def encode(pixels: np.ndarray, filename: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels, "RGB")
    if filename.endswith(".jpg"):
        image.save(buffer, format="JPEG", quality=85, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(out: Path = OUT) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    bundled = []
    for number, name, filename, shape, seed, soma, stain, description in SAMPLES:
        noise = 0.015 if filename.endswith(".jpg") else 0.0
        pixels = draw(shape, seed, soma, stain, cells=1 if number < 2 else 5, noise=noise)
        data = encode(pixels, filename)
        if len(data) > MAX_BYTES:
            raise SystemExit(f"{filename} is {len(data)} bytes, over the {MAX_BYTES} byte budget")
        (out / filename).write_bytes(data)
        bundled.append(
            {
                "image_number": number,
                "image_name": name,
                "image_description": description,
                "filename": filename,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    catalog = {
        "about": (
            "'bundled': synthetic images shipped in this folder (served over loopback HTTP when "
            "offline); 'web': the seed notebook's Wikimedia images, for machines with internet."
        ),
        "bundled": bundled,
        "web": WEB,
    }
    (out / "catalog.json").write_text(json.dumps(catalog, indent=2) + "\n")
    return bundled


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    for entry in main(parser.parse_args().out):
        print(f"{entry['filename']}: {entry['size']} bytes")
