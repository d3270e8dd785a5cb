"""What every route module shares: the app's state, the browser session and the rater id."""
from __future__ import annotations

import hashlib

from flask import current_app, session


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
