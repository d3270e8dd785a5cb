"""The soundtrack jobs: a table in SQLite and one worker thread that runs them in order.

The table *is* the queue: a job is a row with status ``queued``; the worker claims the oldest
one, marks it ``running``, updates its ``stage`` line and ``progress`` (0..1) while it works
and ends it ``done`` (with its results), ``failed`` (with a one-line message) or
``cancelled`` (the owner asked: a queued job is cancelled at once, a running one at its next
progress report, through :class:`Cancelled`).  Because everything lives in the
database, a page reload loses nothing, and a server restart re-queues the jobs it was running
(:meth:`JobStore.requeue_interrupted`).  Each job belongs to one browser session; readers ask
for a session's jobs only.
"""
from __future__ import annotations

import json
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from typing import Callable

from pathlib import Path

from vidscore import cli
from vidscore.webui.db import SqliteStore

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,   -- uuid4 hex; also names the stored upload and the output folder
    session  TEXT NOT NULL,      -- the browser session that owns the job
    status   TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    stage    TEXT NOT NULL,      -- the progress line the page shows
    progress REAL NOT NULL DEFAULT 0,   -- 0..1 of the current phase (composing, rendering)
    cancel   INTEGER NOT NULL DEFAULT 0, -- 1: the owner asked to cancel the running job
    options  TEXT NOT NULL,      -- JSON: the controls asked for
    upload   TEXT NOT NULL,      -- the stored upload's (generated) file name
    name     TEXT NOT NULL,      -- the sanitised original file name, for display only
    created  TEXT NOT NULL,      -- ISO 8601 UTC
    started  TEXT,
    finished TEXT,
    error    TEXT,               -- one line, when failed
    results  TEXT                -- JSON list of songs, when done
);
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs (session);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS jobs_meta (key TEXT PRIMARY KEY, value TEXT);
"""


class Cancelled(Exception):
    """Raised inside a running job whose owner cancelled it."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class JobStore(SqliteStore):
    """The jobs table of one SQLite file (created, with its schema, on first use)."""

    SCHEMA = SCHEMA
    META_TABLE = "jobs_meta"
    SCHEMA_VERSION = SCHEMA_VERSION

    def __init__(self, path):
        self._migrate(path)
        super().__init__(path)

    @staticmethod
    def _migrate(path) -> None:
        """A version-1 file (no progress, cancel or 'cancelled'): rebuild its table in place."""
        import sqlite3
        if not Path(path).is_file():
            return
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
            if not cols or "cancel" in cols:
                return
            # at start-up, before the worker runs: one process, so no transaction is needed
            db.execute("ALTER TABLE jobs RENAME TO jobs_v1")
            db.execute("DROP INDEX IF EXISTS jobs_by_session")
            db.execute("DROP INDEX IF EXISTS jobs_by_status")
            db.executescript(SCHEMA)
            db.execute(f"INSERT INTO jobs ({', '.join(cols)}) SELECT {', '.join(cols)} FROM jobs_v1 ORDER BY rowid")
            db.execute("DROP TABLE jobs_v1")
            db.execute("INSERT OR REPLACE INTO jobs_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        finally:
            db.close()

    def _row(self, row) -> dict | None:
        if row is None:
            return None
        job = dict(row)
        job["options"] = json.loads(job["options"])
        job["results"] = json.loads(job["results"]) if job["results"] else None
        return job

    def add(self, session: str, upload: str, name: str, options: dict, job_id: str | None = None) -> str:
        job_id = job_id or uuid.uuid4().hex
        with self._connect() as db:
            db.execute("INSERT INTO jobs (id, session, status, stage, options, upload, name, created) "
                       "VALUES (?, ?, 'queued', 'queued', ?, ?, ?, ?)",
                       (job_id, session, json.dumps(options), upload, name, now()))
        return job_id

    def get(self, job_id: str, session: str | None = None) -> dict | None:
        """The job, or None when it does not exist (or belongs to another session)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        job = self._row(row)
        if job is None or (session is not None and job["session"] != session):
            return None
        return job

    def for_session(self, session: str) -> list[dict]:
        """The session's jobs, newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE session = ? ORDER BY rowid DESC", (session,)).fetchall()
        return [self._row(r) for r in rows]

    def ahead(self, job_id: str) -> int:
        """How many jobs run before this queued one (the running one included)."""
        with self._connect() as db:
            row = db.execute("SELECT rowid FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return 0
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running' OR "
                              "(status = 'queued' AND rowid < ?)", (row[0],)).fetchone()[0]

    def claim(self) -> dict | None:
        """Mark the oldest queued job running and return it (None when the queue is empty)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY rowid LIMIT 1").fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute("UPDATE jobs SET status = 'running', stage = 'starting', progress = 0, started = ? "
                       "WHERE id = ?",
                       (now(), row["id"]))
            db.execute("COMMIT")
        return self.get(row["id"])

    def set_stage(self, job_id: str, stage: str, progress: float = 0.0) -> None:
        """The running job's progress line and fraction; raises :class:`Cancelled` when its owner
        asked to cancel it (so a job stops at its next report)."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET stage = ?, progress = ? WHERE id = ?",
                       (stage, min(max(float(progress), 0.0), 1.0), job_id))
            row = db.execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None and row[0]:
            raise Cancelled()

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued job now, or ask a running one to stop; returns the status after it
        (None when the job has already ended)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            status = row[0] if row else None
            if status == "queued":
                db.execute("UPDATE jobs SET status = 'cancelled', stage = 'cancelled', finished = ? WHERE id = ?",
                           (now(), job_id))
                status = "cancelled"
            elif status == "running":
                db.execute("UPDATE jobs SET cancel = 1, stage = 'cancelling' WHERE id = ?", (job_id,))
            else:
                status = None
            db.execute("COMMIT")
        return status

    def mark_cancelled(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'cancelled', stage = 'cancelled', finished = ? WHERE id = ?",
                       (now(), job_id))

    def delete(self, job_id: str) -> bool:
        """Remove an ended or queued job's row (a running one must be cancelled first)."""
        with self._connect() as db:
            cur = db.execute("DELETE FROM jobs WHERE id = ? AND status != 'running'", (job_id,))
            return cur.rowcount == 1

    def finish(self, job_id: str, results) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'done', stage = 'done', progress = 1, finished = ?, results = ? "
                       "WHERE id = ?",
                       (now(), json.dumps(results), job_id))

    def fail(self, job_id: str, error: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'failed', stage = 'failed', finished = ?, error = ? WHERE id = ?",
                       (now(), error, job_id))

    def requeue_interrupted(self) -> int:
        """Put jobs left ``running`` by a stopped server back in the queue; returns how many."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'cancelled', stage = 'cancelled', finished = ? "
                       "WHERE status = 'running' AND cancel = 1", (now(),))
            cur = db.execute("UPDATE jobs SET status = 'queued', stage = 'queued (server restarted)', progress = 0, "
                             "started = NULL WHERE status = 'running'")
            return cur.rowcount

    def pending(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]


Handler = Callable[[dict, Callable[..., None]], object]


class Worker:
    """One thread running queued jobs one at a time with ``handler(job, set_stage) -> results``
    (``set_stage(text, progress=0.0)``; it raises :class:`Cancelled` when the job was cancelled).

    Exceptions of the types in ``user_errors`` fail the job with their one-line message; any
    other exception fails it with a short "internal error" line and prints the traceback to
    the server's stderr.  ``log`` (if given) gets one line per finished job.
    """

    def __init__(self, store: JobStore, handler: Handler, user_errors: tuple = (cli.UserError,),
                 poll_s: float = 2.0, log: Callable[[str], None] | None = None):
        self.store, self.handler, self.user_errors, self.poll_s = store, handler, user_errors, poll_s
        self.log = log
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Worker":
        self._thread = threading.Thread(target=self._loop, name="soundtrack-worker", daemon=True)
        self._thread.start()
        return self

    def notify(self) -> None:
        """Wake the worker: a job was added."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current job."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            job = self.store.claim()
            if job is None:
                self._wake.wait(self.poll_s)
                continue
            self.run_one(job)

    def run_one(self, job: dict) -> None:
        job_id = job["id"]
        t0 = time.monotonic()
        try:
            results = self.handler(job, lambda text, progress=0.0: self.store.set_stage(job_id, text, progress))
        except Cancelled:
            self.store.mark_cancelled(job_id)
        except self.user_errors as e:
            self.store.fail(job_id, one_line(e))
        except Exception as e:  # noqa: BLE001 - a job must never kill the worker
            print(f"job {job_id} failed:", file=sys.stderr)
            traceback.print_exc()
            self.store.fail(job_id, f"internal error ({type(e).__name__}: {one_line(e)[:200]}); "
                                    "the server log has the details")
        else:
            self.store.finish(job_id, results)
        if self.log:
            done = self.store.get(job_id)
            self.log(f"job {job_id[:8]}: {done['status']} after {time.monotonic() - t0:.1f} s"
                     + (f": {done['error']}" if done["error"] else ""))
