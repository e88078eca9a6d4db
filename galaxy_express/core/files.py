"""Modes of the files and folders the service creates: never world-readable.

Every process of the service (HTTP, Thrift, the reporter, scripts, migrations)
calls ``restrict_new_files`` first: a umask of 027 makes new files 0640 and
folders 0750 (owner and group, nobody else). A SQLite database holds every
package, so its file is 0600, and SQLite gives its ``-wal`` and ``-shm``
files the database file's mode.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

UMASK = 0o027
SQLITE_MODE = 0o600


def restrict_new_files(db_url: str | None = None) -> None:
    """Set the process umask and, for a SQLite database file, its 0600 mode."""
    os.umask(UMASK)
    if db_url is not None:
        private_sqlite_file(db_url)


def private_sqlite_file(db_url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does, or make an existing one so.

    SQLite opens a missing file with 0644 less the umask; made here first, the
    database and its -wal/-shm files are readable by the service's user only.
    """
    path = _sqlite_path(db_url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SQLITE_MODE))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists():
            os.chmod(file, SQLITE_MODE)


def _sqlite_path(db_url: str) -> Path | None:
    parsed = make_url(db_url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # URI filenames carry their own options; left alone
        return None
    return Path(database)
