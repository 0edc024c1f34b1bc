"""The engine's exception family.

Every failure the engine can foresee is raised as a `DataJointError` subclass, so callers (and the
Prefect layer's retry policy) can tell a bad input from a transient fault without parsing messages.
Messages name the table, attribute or key at fault, never a password or secret key.
"""

from __future__ import annotations


class DataJointError(Exception):
    """Base class of every error the engine raises on purpose."""

    def suggest(self, *args: object) -> DataJointError:
        """Return a copy of this error with a hint appended (DataJoint's API)."""
        return self.__class__(*(self.args + args))


class ConfigError(DataJointError):
    """A configuration value is missing, malformed or of the wrong type."""


class DatabaseConnectionError(DataJointError):
    """The database cannot be reached (names host and user, never the password)."""


class LostConnectionError(DatabaseConnectionError):
    """An open connection was lost mid-operation (transient: reconnect and retry)."""


class DeclarationError(DataJointError):
    """A table definition cannot be parsed or declared."""


class QueryError(DataJointError):
    """A query expression, restriction or fetch request is malformed."""


class MissingTableError(DataJointError):
    """A table (or schema) that the operation needs does not exist."""


class MissingAttributeError(DataJointError, KeyError):
    """An attribute named in an insert, restriction or fetch is not in the heading."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DataValueError(DataJointError, ValueError):
    """A value does not fit its attribute's type."""


class DuplicateError(DataJointError):
    """An insert hit an existing primary key or unique index."""


class IntegrityError(DataJointError):
    """A foreign-key constraint (or stored-object integrity check) failed."""


class AccessError(DataJointError):
    """The database refused the operation for lack of privileges."""


class BlobError(DataJointError):
    """A blob cannot be packed, or bytes cannot be unpacked as a blob."""


class StoreError(DataJointError):
    """An external store is misconfigured, unreachable, or holds a missing/corrupt object."""


class TransientStoreError(StoreError):
    """A store failed in a way that a retry may cure (timeout, 5xx, connection reset)."""


class PopulateError(DataJointError):
    """populate() cannot proceed (e.g. a make() failed without suppress_errors)."""
