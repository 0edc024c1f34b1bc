"""User table tiers: Manual, Lookup, Imported, Computed and Part.

DataJoint lets users call table methods on the class itself (`Test.insert1(...)`, `Test & key`);
the metaclass forwards those to a fresh instance. Instances carry no state of their own beyond a
restriction, so `Test()` is cheap.
"""

from __future__ import annotations

from typing import Any

from .errors import DataJointError
from .naming import table_name as make_table_name
from .populate import AutoPopulate
from .table import Table

FORWARDED = frozenset(
    {
        "key_source", "describe", "heading", "populate", "progress", "primary_key", "proj", "aggr",
        "join", "fetch", "fetch1", "head", "tail", "descendants", "ancestors", "parts", "parents",
        "children", "insert", "insert1", "update1", "drop", "drop_quick", "delete", "delete_quick",
        "restrict", "full_table_name", "table_name", "is_declared", "keys", "to_dicts", "preview",
        "to_arrow", "to_pandas", "to_batches", "jobs_status",
    }
)


class TableMeta(type):
    """Forwards class-level use of a table (`Cls.fetch()`, `Cls & r`, `len(Cls)`) to an instance."""

    def __getattribute__(cls, name: str) -> Any:
        if name in FORWARDED and type.__getattribute__(cls, "_tier") is not None:
            return getattr(cls(), name)
        return type.__getattribute__(cls, name)

    def __and__(cls, restriction: Any) -> Any:
        return cls() & restriction

    def __sub__(cls, restriction: Any) -> Any:
        return cls() - restriction

    def __xor__(cls, restriction: Any) -> Any:
        return cls() ^ restriction

    def __neg__(cls) -> Any:
        return -cls()

    def __mul__(cls, other: Any) -> Any:
        return cls() * other

    def __rmul__(cls, other: Any) -> Any:
        return other * cls()

    def __matmul__(cls, other: Any) -> Any:
        return cls() @ other

    def __add__(cls, other: Any) -> Any:
        return cls() + other

    def __iter__(cls) -> Any:
        return iter(cls())

    def __len__(cls) -> int:
        return len(cls())

    def __contains__(cls, item: Any) -> bool:
        return item in cls()


class UserTable(Table, metaclass=TableMeta):
    """Base of the tiers: the table name comes from the class name and the tier."""

    _tier: str | None = None

    def __init__(self) -> None:  # state lives on the class (set by @schema)
        if type(self)._connection is None:
            raise DataJointError(
                f"class {type(self).__name__} is not associated with a schema: decorate it with @schema"
            )

    @classmethod
    def _compute_table_name(cls) -> str:
        master = getattr(cls, "master", None)
        if cls._tier == "part":
            if master is None:
                raise DataJointError(f"part table {cls.__name__} must be nested inside its master class")
            return make_table_name(cls.__name__, "part", master._compute_table_name())
        return make_table_name(cls.__name__, cls._tier)

    @property
    def table_name(self) -> str:
        name = type(self)._table_name
        return name if name is not None else type(self)._compute_table_name()

    @classmethod
    def parts_of(cls) -> list[type]:
        return [
            value
            for value in vars(cls).values()
            if isinstance(value, type) and issubclass(value, Part) and value is not Part
        ]

    def parts(self, as_objects: bool = False) -> list:
        parts = type(self).parts_of()
        return [p() for p in parts] if as_objects else [p().full_table_name for p in parts]


class Manual(UserTable):
    """Data entered by hand or by external tools."""

    _tier = "manual"


class Lookup(UserTable):
    """Small reference tables, often filled from `contents` at declaration."""

    _tier = "lookup"


class Imported(AutoPopulate, UserTable):
    """Data brought in from outside the database by `make()`."""

    _tier = "imported"


class Computed(AutoPopulate, UserTable):
    """Data computed from other tables by `make()`."""

    _tier = "computed"


class Part(UserTable):
    """Rows that belong to a row of a master table; entered together with it."""

    _tier = "part"
    master: type | None = None

    def delete(self, force: bool = False, **kwargs: Any) -> int:  # type: ignore[override]
        kwargs.setdefault("force_parts", force)
        return super().delete(**kwargs)

    def drop(self, force: bool = False) -> None:
        if not force:
            raise DataJointError(
                f"cannot drop part table {self.table_name!r} directly: drop its master instead "
                "(or pass force=True)"
            )
        super().drop(force=True)

