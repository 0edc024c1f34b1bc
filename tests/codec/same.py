"""Deep, type-strict equality for unpacked blob values (numpy's == is neither deep nor strict).

Two values are the same when their types match (DataJoint's MatCell/MatStruct match ours by name),
arrays agree in class, dtype, shape and every element (NaN equals NaN; object elements compare
recursively), and containers agree element by element.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np


def _type_name(value: Any) -> str:
    return type(value).__name__


def diff(a: Any, b: Any, path: str = "value") -> str | None:
    """A description of the first difference between `a` and `b`, or None when they are the same."""
    if _type_name(a) != _type_name(b):
        return f"{path}: type {type(a).__module__}.{_type_name(a)} != {type(b).__module__}.{_type_name(b)}"
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{path}: array {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if a.dtype.names:
            for name in a.dtype.names:
                found = diff(np.asarray(a[name]), np.asarray(b[name]), f"{path}[{name!r}]")
                if found:
                    return found
            return None
        if a.dtype.kind == "O":
            for index in np.ndindex(a.shape):
                found = diff(a[index], b[index], f"{path}{list(index)}")
                if found:
                    return found
            return None
        if a.dtype.kind in "mM":  # NaT != NaT, so compare the underlying integers
            same = np.array_equal(a.view("i8"), b.view("i8"))
        elif a.dtype.kind in "fc":
            same = np.array_equal(a, b, equal_nan=True)
        else:
            same = np.array_equal(a, b)
        return None if same else f"{path}: array values differ: {a!r} != {b!r}"
    if isinstance(a, np.generic):
        return diff(np.asarray(a), np.asarray(b), path)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = diff(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)!r} != {list(b)!r}"
        for key in a:
            found = diff(a[key], b[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(a, Decimal):
        return None if str(a) == str(b) else f"{path}: {a!r} != {b!r}"
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    if isinstance(a, complex) and (a != a or b != b):
        return None if repr(a) == repr(b) else f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def assert_same(a: Any, b: Any) -> None:
    found = diff(a, b)
    assert found is None, found
