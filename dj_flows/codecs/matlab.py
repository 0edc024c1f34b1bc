"""MATLAB struct and cell arrays as numpy types, under DataJoint's names.

A blob keeps a MATLAB struct ('S') apart from a numpy record array ('F') and a MATLAB cell array
('C') apart from an object array ('A'), so the codec needs two marker types to tell them apart on
the way in and to hand back on the way out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MatCell", "MatStruct"]


class MatCell(np.ndarray):
    """A numpy array that packs as a MATLAB cell array (usually of dtype object)."""


class MatStruct(np.recarray):
    """A numpy record array that packs as a MATLAB struct array (one field per struct field)."""
