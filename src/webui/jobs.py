"""The soundtrack jobs: a table in SQLite and one worker thread that runs them in order.

The table *is* the queue: a job is a row with status ``queued``; the worker claims the oldest
one, marks it ``running``, updates its ``stage`` line while it works and ends it ``done`` (with
its results) or ``failed`` (with a one-line message).  Because everything lives in the
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

import cli
from webui.db import SqliteStore

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,   -- uuid4 hex; also names the stored upload and the output folder
    session  TEXT NOT NULL,      -- the browser session that owns the job
    status   TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    stage    TEXT NOT NULL,      -- the progress line the page shows
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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class JobStore(SqliteStore):
    """The jobs table of one SQLite file (created, with its schema, on first use)."""

    SCHEMA = SCHEMA
    META_TABLE = "jobs_meta"
    SCHEMA_VERSION = SCHEMA_VERSION

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
            db.execute("UPDATE jobs SET status = 'running', stage = 'starting', started = ? WHERE id = ?",
                       (now(), row["id"]))
            db.execute("COMMIT")
        return self.get(row["id"])

    def set_stage(self, job_id: str, stage: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET stage = ? WHERE id = ?", (stage, job_id))

    def finish(self, job_id: str, results) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'done', stage = 'done', finished = ?, results = ? WHERE id = ?",
                       (now(), json.dumps(results), job_id))

    def fail(self, job_id: str, error: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'failed', stage = 'failed', finished = ?, error = ? WHERE id = ?",
                       (now(), error, job_id))

    def requeue_interrupted(self) -> int:
        """Put jobs left ``running`` by a stopped server back in the queue; returns how many."""
        with self._connect() as db:
            cur = db.execute("UPDATE jobs SET status = 'queued', stage = 'queued (server restarted)', "
                             "started = NULL WHERE status = 'running'")
            return cur.rowcount

    def pending(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]


Handler = Callable[[dict, Callable[[str], None]], object]


class Worker:
    """One thread running queued jobs one at a time with ``handler(job, set_stage) -> results``.

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
            results = self.handler(job, lambda text: self.store.set_stage(job_id, text))
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
