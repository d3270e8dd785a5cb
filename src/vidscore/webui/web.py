"""What every route module shares: the app's state, the browser session, the rater id and
the session's own jobs."""
from __future__ import annotations

import hashlib

from flask import abort, current_app, session


def state():
    """The running app's :class:`webui.server.State` (stores, worker, folders, config)."""
    return current_app.extensions["cmt"]


def sid() -> str:
    """This browser's session id (random, in the signed cookie)."""
    return session["sid"]


def secret() -> bytes:
    return current_app.config["SECRET_KEY"]


def rater() -> str:
    """An opaque id for ratings: derived from the session id, which is never exported."""
    return hashlib.sha256(secret() + sid().encode()).hexdigest()[:16]


def own_job(job_id: str) -> dict:
    """This session's job, or 404 (another browser's jobs do not exist for this one)."""
    job = state().jobs.get(job_id, session=sid())
    if job is None:
        abort(404, "no such job in this browser session")
    return job


def own_song(job_id: str, k: int) -> tuple[dict, dict]:
    """This session's finished job and its song ``k``, or 404."""
    job = state().jobs.get(job_id, session=sid())
    if job is None or job["status"] != "done" or not 0 <= k < len(job["results"] or []):
        abort(404, "no such result in this browser session")
    return job, job["results"][k]
