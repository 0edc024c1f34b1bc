"""The MariaDB/MySQL login every benchmark uses, from DJ_HOST / DJ_PORT / DJ_USER / DJ_PASS
(default 127.0.0.1:3306, root, empty password), as config entries for dj_flows and for
DataJoint 0.14 (which takes the port inside `database.host`). TLS off: this MariaDB has none."""

from __future__ import annotations

import os
from typing import Any


def login() -> tuple[str, int, str, str]:
    return (
        os.environ.get("DJ_HOST", "127.0.0.1"),
        int(os.environ.get("DJ_PORT", "3306")),
        os.environ.get("DJ_USER", "root"),
        os.environ.get("DJ_PASS", ""),
    )


def ours(**extra: Any) -> dict[str, Any]:
    """dj_flows.config entries (safemode off, so benchmarks can drop what they made)."""
    host, port, user, password = login()
    return {
        "database.backend": "mysql",
        "database.host": host,
        "database.port": port,
        "database.user": user,
        "database.password": password,
        "database.use_tls": False,
        "safemode": False,
        **extra,
    }


def datajoint(**extra: Any) -> dict[str, Any]:
    """datajoint.config entries (quiet logging, safemode off)."""
    host, port, user, password = login()
    return {
        "database.host": f"{host}:{port}",
        "database.user": user,
        "database.password": password,
        "database.use_tls": False,
        "safemode": False,
        "loglevel": "WARNING",
        **extra,
    }
