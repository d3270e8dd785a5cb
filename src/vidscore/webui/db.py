"""The SQLite plumbing the job queue and the ratings share: schema on first use, one connection per call."""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator


class SqliteStore:
    """A store in one SQLite file.  Subclasses set SCHEMA (the DDL), META_TABLE (a key/value
    table the DDL creates) and SCHEMA_VERSION; the file and its tables are created on first use."""

    SCHEMA = ""
    META_TABLE = ""
    SCHEMA_VERSION = 1

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self.SCHEMA)
            db.execute(f"INSERT OR IGNORE INTO {self.META_TABLE} VALUES ('schema_version', ?)",
                       (str(self.SCHEMA_VERSION),))

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()
