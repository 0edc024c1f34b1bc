"""datajoint's MatCell/MatStruct <-> dj_flows' (at any depth), for cross-checks with datajoint.

Values pass through datajoint's pack as theirs and come back from its unpack as ours, so results
compare (and pickle) without datajoint's classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dj_flows.codecs import MatCell, MatStruct


def to_datajoint(value: Any, dj: Any) -> Any:
    """Our MatCell/MatStruct (also inside object arrays) as datajoint's, so it packs them alike."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        value = np.array(value, dtype=object, copy=True).view(type(value))
        for index in np.ndindex(value.shape):
            value[index] = to_datajoint(value[index], dj)
    if isinstance(value, MatStruct):
        plain = np.array(value, copy=True)
        for name in plain.dtype.names:
            if plain.dtype[name].kind == "O":
                for index in np.ndindex(plain.shape):
                    plain[name][index] = to_datajoint(plain[name][index], dj)
        return plain.view(dj.MatStruct)
    if isinstance(value, MatCell):
        return np.asarray(value).view(dj.MatCell)
    return value


def from_datajoint(value: Any, dj: Any) -> Any:
    """datajoint's MatCell/MatStruct (at any depth) as ours, so the pickle needs no datajoint."""
    if isinstance(value, dj.MatCell):
        value = np.asarray(value).view(MatCell)
    elif isinstance(value, dj.MatStruct):
        value = np.asarray(value).view(MatStruct)
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        for index in np.ndindex(value.shape):
            value[index] = from_datajoint(value[index], dj)
    elif isinstance(value, np.ndarray) and value.dtype.names:
        for name in value.dtype.names:
            column = value[name]
            if column.dtype.kind == "O":
                for index in np.ndindex(column.shape):
                    column[index] = from_datajoint(column[index], dj)
    elif isinstance(value, list):
        value = [from_datajoint(x, dj) for x in value]
    elif isinstance(value, tuple):
        value = tuple(from_datajoint(x, dj) for x in value)
    elif isinstance(value, dict):
        value = {k: from_datajoint(x, dj) for k, x in value.items()}
    return value
