"""Write the blob test vectors in tests/vectors/blob/ from datajoint 0.14.10.

    /work/main/.venv/bin/python scripts/make_blob_vectors.py [--check]

For every value in tests/codec/blob_cases.py it stores DataJoint's `pack(value, compress)` bytes
(`<case>.blob`, and `<case>.z.blob` when compression changes them), and what DataJoint's `unpack`
returns for them in expected.pkl (MatCell/MatStruct mapped to dj_flows' classes, so the pickle
loads without datajoint). For a subset it also writes the same blob with 32-bit dimensions
(`<case>.dims32.blob`), as the 32-bit mYm build writes them, checked by reading it back with
DataJoint's `use_32bit_dims`. manifest.json lists every file with its sha256.

--check regenerates in memory and fails if any committed file would change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import datajoint as dj  # noqa: E402
from datajoint import blob as djblob  # noqa: E402

from tests.codec.blob_cases import CASES, NATURAL, RAW, RAW_EXPECTED  # noqa: E402
from tests.codec.dj_types import from_datajoint, to_datajoint  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "blob"
DIMS32 = [
    "array_float64_2d", "array_int16_3d", "array_complex64_1d", "array_bool_0d", "char_2d",
    "char_row", "unicode_1d", "object_mixed", "structured_nested", "matstruct_1x1",
    "matcell_strings", "list_nested", "dict_mixed_keys", "str_unicode", "decimal", "int_11",
    "array_float64_empty_0x3",
]  # fmt: skip


class To32:
    """Rewrite an uncompressed 64-bit blob with 32-bit dimensions and lengths."""

    def __init__(self, blob: bytes) -> None:
        self.b, self.p = blob, 4

    def u(self, n: int) -> int:
        v = int.from_bytes(self.b[self.p : self.p + n], "little")
        self.p += n
        return v

    def raw(self, n: int) -> bytes:
        self.p += n
        return self.b[self.p - n : self.p]

    def dim(self) -> bytes:
        return struct.pack("<I", self.u(8))

    def dims(self) -> tuple[bytes, int]:
        ndim = self.u(8)
        shape = [self.u(8) for _ in range(ndim)]
        return struct.pack(f"<I{ndim}I", ndim, *shape), int(np.prod(shape))

    def sized(self) -> bytes:
        self.u(8)
        body = self.value()
        return struct.pack("<I", len(body)) + body

    def names(self, n: int) -> bytes:
        end = self.p
        for _ in range(n):
            end = self.b.index(b"\0", end) + 1
        return self.raw(end - self.p)

    def value(self) -> bytes:
        code = self.raw(1)
        c = code[0]
        if code == b"A":
            dims, n = self.dims()
            type_id, cplx = struct.unpack("<II", self.raw(8))
            head = code + dims + struct.pack("<II", type_id, cplx)
            if type_id == 5:
                return head + b"".join(self.sized() for _ in range(n))
            size = {4: 2, 3: 1, 6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4}.get(type_id, 8)
            return head + self.raw(n * size * (2 if cplx else 1))
        if code == b"S":
            dims, n = self.dims()
            nf = self.u(4)
            head = code + dims + struct.pack("<I", nf) + self.names(nf)
            return head + b"".join(self.sized() for _ in range(n * nf))
        if code == b"C":
            dims, n = self.dims()
            return code + dims + b"".join(self.sized() for _ in range(n))
        if code == b"F":
            nf = self.u(4)
            return (
                code
                + struct.pack("<I", nf)
                + self.names(nf)
                + b"".join(self.value() for _ in range(nf))
            )
        if c in (1, 2, 3):
            n = self.u(8)
            return code + struct.pack("<I", n) + b"".join(self.sized() for _ in range(n))
        if c == 4:
            n = self.u(8)
            return code + struct.pack("<I", n) + b"".join(self.sized() for _ in range(2 * n))
        if c in (5, 6) or code == b"d":
            n = self.u(8)
            return code + struct.pack("<I", n) + self.raw(n)
        if c == 0x0A:
            n = self.u(2)
            return code + struct.pack("<H", n) + self.raw(n)
        fixed = {0xFF: 0, 0x0B: 1, 0x0C: 16, 0x0D: 8, ord("t"): 12, ord("u"): 16}[c]
        return code + self.raw(fixed)

    def convert(self) -> bytes:
        out = self.b[:4] + self.value()
        assert self.p == len(self.b), "trailing bytes"
        return out


def dj_unpack(blob: bytes, dims32: bool = False) -> tuple[bool, Any]:
    djblob.use_32bit_dims = dims32
    try:
        return True, from_datajoint(djblob.unpack(blob), dj)
    except Exception:
        return False, None
    finally:
        djblob.use_32bit_dims = False


def build() -> tuple[dict[str, bytes], dict[str, Any], list[dict]]:
    files: dict[str, bytes] = {}
    expected: dict[str, Any] = {}
    manifest: list[dict] = []

    def add(file: str, blob: bytes, key: str, value: Any, **info: Any) -> None:
        files[file] = blob
        expected.setdefault(key, value)
        manifest.append({"file": file, "sha256": hashlib.sha256(blob).hexdigest()[:16], "size": len(blob),
                         "protocol": blob[:6].split(b"\0")[0].decode(), "expected": key, **info})  # fmt: skip

    for name, make in CASES.items():
        plain = djblob.pack(to_datajoint(make(), dj), compress=False)
        packed = djblob.pack(to_datajoint(make(), dj), compress=True)
        for compress, blob in ((False, plain), (True, packed)):
            if compress and blob == plain:
                manifest[-1]["compress"] = "either"
                continue
            readable, value = dj_unpack(blob)
            if not readable:
                value = NATURAL[name]()
            file = f"{name}{'.z' if compress else ''}.blob"
            add(file, blob, name, value, case=name, compress=compress, dj_readable=readable)
        if name in DIMS32:
            blob32 = To32(plain).convert()
            readable, value = dj_unpack(blob32, dims32=True)
            assert readable, name
            add(
                f"{name}.dims32.blob",
                blob32,
                f"{name}.dims32",
                value,
                case=name,
                dims32=True,
                dj_readable=True,
            )
    for name, blob in RAW.items():
        readable, value = dj_unpack(blob)
        value = value if readable else RAW_EXPECTED[name]()
        add(f"{name}.blob", blob, name, value, raw=True, dj_readable=readable)
    return files, expected, manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the committed vectors")
    args = parser.parse_args()
    files, expected, manifest = build()
    lines = ",\n".join(f"  {json.dumps(entry)}" for entry in manifest)
    manifest_text = f'{{"datajoint": "{dj.__version__}", "vectors": [\n{lines}\n]}}\n'
    if args.check:
        stale = [
            f for f, b in files.items() if not (OUT / f).exists() or (OUT / f).read_bytes() != b
        ]
        if (OUT / "manifest.json").read_text() != manifest_text:
            stale.append("manifest.json")
        print("stale:", stale if stale else "none")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.blob"):
        old.unlink()
    for file, blob in files.items():
        (OUT / file).write_bytes(blob)
    (OUT / "expected.pkl").write_bytes(pickle.dumps(expected, protocol=4))
    (OUT / "manifest.json").write_text(manifest_text)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(files)} vectors, {total / 1024:.0f} KiB in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
