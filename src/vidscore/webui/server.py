"""The Flask app: its state, settings, request checks and error pages; the routes live in
small blueprints, one per part of the app:

* :mod:`webui.routes_soundtrack`: ``/`` and the jobs (``/api/jobs``..., ``/files/...``);
* :mod:`webui.routes_listening`: ``/listen``, ``/create``, ``/summary``, the CSVs, ratings,
  A/B comparisons and the blind clips (``/clips/<token>``);
* :mod:`webui.routes_site`: ``/favicon.ico`` and ``/api/health``.

Each browser gets a random session id in a signed cookie; jobs, their files and creator
ratings are visible to that session only.  POSTs and DELETEs must carry
``X-Requested-With: cmt`` (the pages' scripts send it; a form on another site cannot), so
other sites cannot submit for you.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app, jsonify, request, session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from vidscore import cli
from vidscore.webui import evalset, ratings, soundtrack
from vidscore.webui.jobs import JobStore, Worker

POST_HEADER = ("X-Requested-With", "cmt")


@dataclass
class AppConfig:
    data_dir: Path
    model: object                      # the loaded checkpoint (model.load_checkpoint)
    model_name: str = "model"          # how ratings of this server's results are grouped
    eval_dir: Path | None = None       # listening-test clips; default <data_dir>/eval_set
    max_upload_mb: float = 200.0
    max_songs: int = 5
    max_video_s: float = 600.0
    start_worker: bool = True          # False: accept jobs but run none (tests of the routes)
    hp: dict | None = None             # main_cp.py's hyperparameter block (C, sampling, ...); None: the defaults


class State:
    """What the routes share: stores, worker, folders."""

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        self.data_dir = Path(cfg.data_dir)
        self.eval_dir = Path(cfg.eval_dir) if cfg.eval_dir else self.data_dir / "eval_set"
        for sub in ("uploads", "jobs", "previews"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.eval_dir.mkdir(parents=True, exist_ok=True)
        for d in {self.data_dir, self.eval_dir}:   # part files of a killed server (kill -9); a live one's stay
            cli.clean_stale_parts(d)
        self.jobs = JobStore(self.data_dir / "jobs.sqlite3")
        self.ratings = ratings.RatingStore(self.data_dir / "ratings.sqlite3")
        self.previews = evalset.Previews(self.data_dir / "previews")
        self.runner = soundtrack.SoundtrackJob(cfg.model, self.data_dir, cfg.hp)
        self.requeued = self.jobs.requeue_interrupted()
        self.worker = Worker(self.jobs, self.runner, log=lambda line: print(line, flush=True))
        if cfg.start_worker:
            self.worker.start()


def secret_key(data_dir: Path) -> bytes:
    """The cookie-signing key, made once per data folder (so sessions survive restarts)."""
    path = Path(data_dir) / "secret_key"
    if not path.is_file():
        with cli.atomic_path(path) as tmp:
            Path(tmp).write_text(secrets.token_hex(32))
        os.chmod(path, 0o600)
    return path.read_text().strip().encode()


def create_app(cfg: AppConfig) -> Flask:
    """The Flask app: the state, the cookie settings, the checks every request passes, the
    error pages, and the routes of :mod:`webui.routes_soundtrack`, :mod:`webui.routes_listening`
    and :mod:`webui.routes_site`."""
    from vidscore.webui import routes_listening, routes_site, routes_soundtrack

    app = Flask(__name__)
    state = State(cfg)
    app.extensions["cmt"] = state
    app.config.update(
        SECRET_KEY=secret_key(state.data_dir),
        MAX_CONTENT_LENGTH=int(cfg.max_upload_mb * 1024 * 1024),
        SESSION_COOKIE_NAME="cmt_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=timedelta(days=180),
    )
    app.json.sort_keys = False
    app.before_request(ensure_session)
    app.register_error_handler(cli.UserError, user_error)
    app.register_error_handler(RequestEntityTooLarge, too_large)
    app.register_error_handler(HTTPException, http_error)
    for module in (routes_soundtrack, routes_listening, routes_site):
        app.register_blueprint(module.bp)
    return app


def ensure_session():
    """Every browser gets a session id; changes must come from the app's own pages."""
    if "sid" not in session:
        session["sid"] = secrets.token_hex(16)
        session.permanent = True
    if request.method in ("POST", "DELETE") and request.headers.get(POST_HEADER[0]) != POST_HEADER[1]:
        return jsonify(error="requests must come from the app's own pages"), 403
    return None


def user_error(e):
    return jsonify(error=" ".join(str(e).split())), 400


def too_large(e):
    limit = current_app.extensions["cmt"].cfg.max_upload_mb
    return jsonify(error=f"the file is too large: uploads are limited to {limit:g} MB"), 413


def http_error(e):
    if request.path.startswith("/api/"):
        return jsonify(error=e.description), e.code
    return e
