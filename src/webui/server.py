"""The Flask app: the soundtrack pages, the rating pages and their JSON endpoints.

Pages: ``/`` (upload a video, choose the controls, follow the jobs, play and download),
``/listen`` (listeners rate the listening-test clips), ``/create`` (creators rate their own
results and the controls), ``/summary`` (mean and count per model and criterion),
``/ratings.csv`` (every rating).  JSON: ``/api/health``, ``/api/jobs`` (GET list, POST new job),
``/api/jobs/<id>``, ``/api/jobs/<id>/songs/<k>/listening`` (add a result to the listening
test), ``/api/ratings`` (POST), ``/api/summary``.  Files: ``/files/<job>/<kind>/<k>`` and
``/clips/<model>/<file>``.

Each browser gets a random session id in a signed cookie; jobs, their files and creator
ratings are visible to that session only.  POSTs must carry ``X-Requested-With: cmt`` (the
pages' scripts send it; a form on another site cannot), so other sites cannot submit for you.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, Response, abort, jsonify, render_template, request, send_file, session, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import secure_filename

import cli
import dictionary_mix as D
from webui import evalset, media, ratings, soundtrack
from webui.jobs import JobStore, Worker

FILE_KINDS = {"video": "video/mp4", "preview": "video/mp4", "midi": "audio/midi", "audio": "audio/wav",
              "report": "application/json"}
DOWNLOAD_SUFFIX = {"video": ".mp4", "preview": "_preview.mp4", "midi": ".mid", "audio": ".wav", "report": ".json"}
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


class State:
    """What the routes share: stores, worker, folders."""

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        self.data_dir = Path(cfg.data_dir)
        self.eval_dir = Path(cfg.eval_dir) if cfg.eval_dir else self.data_dir / "eval_set"
        for sub in ("uploads", "jobs", "previews"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.eval_dir.mkdir(parents=True, exist_ok=True)
        self.jobs = JobStore(self.data_dir / "jobs.sqlite3")
        self.ratings = ratings.RatingStore(self.data_dir / "ratings.sqlite3")
        self.previews = evalset.Previews(self.data_dir / "previews")
        self.runner = soundtrack.SoundtrackJob(cfg.model, self.data_dir)
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

    # ------------------------------------------------------------------ sessions and errors
    def sid() -> str:
        return session["sid"]

    def rater() -> str:
        """An opaque id for ratings: derived from the session id, which is never exported."""
        return hashlib.sha256(app.config["SECRET_KEY"] + sid().encode()).hexdigest()[:16]

    @app.before_request
    def ensure_session():
        if "sid" not in session:
            session["sid"] = secrets.token_hex(16)
            session.permanent = True
        if request.method == "POST" and request.headers.get(POST_HEADER[0]) != POST_HEADER[1]:
            return jsonify(error="requests must come from the app's own pages"), 403

    @app.errorhandler(cli.UserError)
    def user_error(e):
        return jsonify(error=" ".join(str(e).split())), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(e):
        return jsonify(error=f"the file is too large: uploads are limited to {cfg.max_upload_mb:g} MB"), 413

    @app.errorhandler(HTTPException)
    def http_error(e):
        if request.path.startswith("/api/"):
            return jsonify(error=e.description), e.code
        return e

    # ------------------------------------------------------------------ pages
    @app.get("/")
    def index():
        return render_template("index.html", model_name=cfg.model_name, emotions=soundtrack.emotions(cfg.model),
                               meanings=D.EMOTION_MEANING,
                               instruments=soundtrack.known_instruments(cfg.model), threshold_range=soundtrack.THRESHOLD_RANGE,
                               default_threshold=soundtrack.DEFAULT_THRESHOLD, tempo_range=soundtrack.TEMPO_RANGE,
                               max_songs=cfg.max_songs, max_upload_mb=cfg.max_upload_mb,
                               max_upload_bytes=app.config["MAX_CONTENT_LENGTH"],
                               video_exts=sorted(soundtrack.pipeline.VIDEO_EXTS), page="index")

    @app.get("/listen")
    def listen():
        clips = evalset.order_for(rater(), evalset.scan(state.eval_dir))
        done = state.ratings.by_rater(rater(), "listener")
        items = [{"key": c.key, "label": f"Clip {i + 1}", "src": url_for("clip", model=c.model, name=c.path.name),
                  "rating": done.get(c.key)} for i, c in enumerate(clips)]
        return render_template("rate.html", role="listener", items=items, eval_dir=str(state.eval_dir),
                               **rating_context(), page="listen")

    @app.get("/create")
    def create():
        done = state.ratings.by_rater(rater(), "creator")
        items = []
        for job in state.jobs.for_session(sid()):
            if job["status"] != "done":
                continue
            for song in job["results"]:
                key = f"job:{job['id']}/{song['k']}"
                items.append({"key": key, "label": f"{job['name']}, song {song['k'] + 1}",
                              "src": url_for("job_file", job_id=job["id"], kind="preview", k=song["k"]),
                              "controls": soundtrack.controls_asked(job["options"]), "rating": done.get(key)})
        return render_template("rate.html", role="creator", items=items, **rating_context(), page="create")

    def rating_context() -> dict:
        return dict(criteria=ratings.CRITERIA, scores=ratings.SCORES, levels=ratings.LEVELS,
                    answers=ratings.ANSWERS, level=session.get("level"))

    @app.get("/summary")
    def summary():
        tables = [(title, pivot(state.ratings.summary(role))) for title, role in
                  (("All ratings", None), ("Listeners", "listener"), ("Creators", "creator"))]
        return render_template("summary.html", tables=tables, criteria=ratings.CRITERIA,
                               controls=state.ratings.control_summary(), answers=ratings.ANSWERS, page="summary")

    @app.get("/ratings.csv")
    def ratings_csv():
        return Response(state.ratings.csv_text(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=ratings.csv"})

    # ------------------------------------------------------------------ JSON
    @app.get("/api/health")
    def health():
        return jsonify(ok=True, model=cfg.model_name, pending=state.jobs.pending())

    @app.get("/api/jobs")
    def list_jobs():
        return jsonify(jobs=[public(j) for j in state.jobs.for_session(sid())])

    @app.get("/api/jobs/<job_id>")
    def get_job(job_id):
        job = state.jobs.get(job_id, session=sid())
        if job is None:
            abort(404, "no such job in this browser session")
        return jsonify(job=public(job))

    @app.post("/api/jobs")
    def new_job():
        options = soundtrack.parse_options(request.form, request.form.getlist("instruments"), cfg.model,
                                           cfg.max_songs)
        upload = request.files.get("video")
        ext = media.upload_extension(upload.filename if upload else "")
        shown = secure_filename(upload.filename)[:100] or f"video{ext}"
        job_id = uuid.uuid4().hex
        stored = state.data_dir / "uploads" / f"{job_id}{ext}"
        with cli.atomic_path(stored) as tmp:
            upload.save(tmp)
        try:
            info = media.probe_video(stored, shown_name=repr(shown))
            if info.duration is not None and info.duration > cfg.max_video_s:
                raise cli.UserError(f"{shown!r} lasts {info.duration:.0f} s; videos are limited to "
                                    f"{cfg.max_video_s:g} s here")
        except cli.UserError:
            stored.unlink(missing_ok=True)
            raise
        options["model"] = cfg.model_name
        state.jobs.add(sid(), stored.name, shown, options, job_id=job_id)
        state.worker.notify()
        return jsonify(job=public(state.jobs.get(job_id))), 201

    @app.post("/api/jobs/<job_id>/songs/<int:k>/listening")
    def add_to_listening(job_id, k):
        job, song = own_song(job_id, k)
        name = f"{job_id[:8]}_{k}.mp4"
        evalset.add_clip(state.eval_dir, safe_model(job["options"].get("model", cfg.model_name)),
                         state.runner.out_dir(job_id) / song["files"]["video"], name)
        return jsonify(added=True, eval_dir=str(state.eval_dir))

    @app.post("/api/ratings")
    def rate():
        data = request.get_json(silent=True) or {}
        role, item = data.get("role"), str(data.get("item", ""))
        controls = None
        if role == "listener":
            clip = evalset.scan(state.eval_dir).get(item)
            if clip is None:
                abort(404, "no such clip in the listening test")
            model = clip.model
        elif role == "creator":
            job_id, _, k = item.removeprefix("job:").partition("/")
            job, _song = own_song(job_id, int(k) if k.isdigit() else -1)
            model = job["options"].get("model", cfg.model_name)
            controls = data.get("controls") or {}
            for key, what in soundtrack.controls_asked(job["options"]):
                if controls.get(key) not in ratings.ANSWERS:
                    raise cli.UserError(f"say whether the music did what was asked: {what}")
        else:
            raise cli.UserError("role must be listener or creator")
        rid = state.ratings.save(rater=rater(), role=role, level=str(data.get("level", "")), item=item,
                                 model=model, scores=data.get("scores") or {}, controls=controls)
        session["level"] = data.get("level")
        return jsonify(saved=True, id=rid)

    @app.get("/api/summary")
    def summary_json():
        return jsonify(summary=state.ratings.summary(), controls=state.ratings.control_summary())

    # ------------------------------------------------------------------ files
    @app.get("/files/<job_id>/<kind>/<int:k>")
    def job_file(job_id, kind, k):
        if kind not in FILE_KINDS:
            abort(404)
        job, song = own_song(job_id, k)
        path = state.runner.out_dir(job_id) / song["files"][kind]
        if not path.is_file():
            abort(404)
        download = request.args.get("download") == "1"
        stem = Path(job["name"]).stem or "video"
        return send_file(path, mimetype=FILE_KINDS[kind], as_attachment=download,
                         download_name=f"{stem}_music_{k + 1}{DOWNLOAD_SUFFIX[kind]}", conditional=True)

    @app.get("/clips/<model>/<name>")
    def clip(model, name):
        found = evalset.scan(state.eval_dir).get(f"eval:{model}/{name}")
        if found is None:
            abort(404)
        return send_file(state.previews.get(found), mimetype="video/mp4", conditional=True)

    # ------------------------------------------------------------------ helpers
    def own_song(job_id: str, k: int) -> tuple[dict, dict]:
        job = state.jobs.get(job_id, session=sid())
        if job is None or job["status"] != "done" or not 0 <= k < len(job["results"] or []):
            abort(404, "no such result in this browser session")
        return job, job["results"][k]

    def public(job: dict) -> dict:
        out = {key: job[key] for key in ("id", "name", "status", "stage", "options", "created", "started",
                                         "finished", "error")}
        out["ahead"] = state.jobs.ahead(job["id"]) if job["status"] == "queued" else 0
        out["instrument_names"] = [D.INSTRUMENTS[i - 1] for i in job["options"]["instruments"]]
        songs = []
        for song in job["results"] or []:
            urls = {kind: url_for("job_file", job_id=job["id"], kind=kind, k=song["k"]) for kind in FILE_KINDS}
            downloads = {kind: u + "?download=1" for kind, u in urls.items()}
            songs.append({**{k: v for k, v in song.items() if k != "files"}, "urls": urls, "downloads": downloads})
        out["results"] = songs
        return out

    return app


def safe_model(name: str) -> str:
    return secure_filename(name) or "model"


def pivot(rows: list[dict]) -> list[dict]:
    """Summary rows (model, criterion, mean, count) -> one row per model with a cell per criterion."""
    models: dict[str, dict] = {}
    for r in rows:
        models.setdefault(r["model"], {"model": r["model"], "cells": {}})["cells"][r["criterion"]] = r
    return list(models.values())
