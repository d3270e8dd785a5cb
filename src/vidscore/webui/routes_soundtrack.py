"""The soundtrack page and its JSON: upload a video with the controls, follow the session's
jobs (stage, percentage), regenerate, cancel and delete them, and fetch their files.

``/`` the page; ``/api/jobs`` (GET the session's jobs, POST a new one); ``/api/jobs/<id>``
(GET; DELETE removes an ended or queued job and its files); ``/api/jobs/<id>/cancel`` and
``/api/jobs/<id>/regenerate`` (POST: the same video and settings with a new seed);
``/api/jobs/<id>/songs/<k>/listening`` (POST: add a result to the listening test);
``/files/<id>/<kind>/<k>`` (a result's files; ``/files/<id>/beats`` the beats picture).
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_file, url_for
from werkzeug.utils import secure_filename

from vidscore import cli
from vidscore.generation.job import VIDEO_EXTS
from vidscore.webui import evalset, media, soundtrack
from vidscore.webui.web import own_job, own_song, sid, state

bp = Blueprint("soundtrack", __name__)

FILE_KINDS = {"video": "video/mp4", "preview": "video/mp4", "midi": "audio/midi", "audio": "audio/wav",
              "report": "application/json", "stems": "application/zip"}
DOWNLOAD_SUFFIX = {"video": ".mp4", "preview": "_preview.mp4", "midi": ".mid", "audio": ".wav", "report": ".json",
                   "stems": "_stems.zip"}


@bp.get("/")
def index():
    cfg = state().cfg
    return render_template("index.html", model_name=cfg.model_name, **soundtrack.choices(cfg.model),
                           threshold_range=soundtrack.THRESHOLD_RANGE, default_threshold=soundtrack.DEFAULT_THRESHOLD,
                           tempo_range=soundtrack.TEMPO_RANGE, max_songs=cfg.max_songs,
                           max_upload_mb=cfg.max_upload_mb, max_upload_bytes=current_app.config["MAX_CONTENT_LENGTH"],
                           video_exts=sorted(VIDEO_EXTS), page="index")


@bp.get("/api/jobs")
def list_jobs():
    return jsonify(jobs=[public(j) for j in state().jobs.for_session(sid())])


@bp.get("/api/jobs/<job_id>")
def get_job(job_id):
    return jsonify(job=public(own_job(job_id)))


@bp.post("/api/jobs")
def new_job():
    st, cfg = state(), state().cfg
    options = soundtrack.parse_options(request.form, request.form.getlist("instruments"), cfg.model, cfg.max_songs)
    upload = request.files.get("video")
    ext = media.upload_extension(upload.filename if upload else "")
    shown = secure_filename(upload.filename)[:100] or f"video{ext}"
    job_id = uuid.uuid4().hex
    stored = st.data_dir / "uploads" / f"{job_id}{ext}"
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
    st.jobs.add(sid(), stored.name, shown, options, job_id=job_id)
    st.worker.notify()
    return jsonify(job=public(st.jobs.get(job_id))), 201


@bp.post("/api/jobs/<job_id>/regenerate")
def regenerate(job_id):
    """The same video and settings, a new seed: a new job."""
    st = state()
    job = own_job(job_id)
    src = st.runner.upload_path(job)
    if not src.is_file():
        abort(404, "the video of this job is gone; upload it again")
    new_id = uuid.uuid4().hex
    stored = src.with_name(f"{new_id}{src.suffix}")
    try:
        os.link(src, stored)                 # each job owns its upload, so deleting one keeps the other's
    except OSError:
        shutil.copyfile(src, stored)
    st.jobs.add(sid(), stored.name, job["name"], soundtrack.new_seed(job["options"]), job_id=new_id)
    st.worker.notify()
    return jsonify(job=public(st.jobs.get(new_id))), 201


@bp.post("/api/jobs/<job_id>/cancel")
def cancel(job_id):
    own_job(job_id)
    status = state().jobs.cancel(job_id)
    if status is None:
        raise cli.UserError("this job has already ended; delete it instead")
    return jsonify(job=public(state().jobs.get(job_id)))


@bp.delete("/api/jobs/<job_id>")
def delete(job_id):
    st = state()
    job = own_job(job_id)
    if not st.jobs.delete(job_id):
        raise cli.UserError("the job is running: cancel it first")
    st.runner.upload_path(job).unlink(missing_ok=True)
    shutil.rmtree(st.runner.out_dir(job_id), ignore_errors=True)
    return jsonify(deleted=True)


@bp.post("/api/jobs/<job_id>/songs/<int:k>/listening")
def add_to_listening(job_id, k):
    st = state()
    job, song = own_song(job_id, k)
    name = f"{job_id[:8]}_{k}.mp4"
    evalset.add_clip(st.eval_dir, safe_model(job["options"].get("model", st.cfg.model_name)),
                     st.runner.out_dir(job_id) / song["files"]["video"], name)
    return jsonify(added=True)


@bp.get("/files/<job_id>/<kind>/<int:k>")
def job_file(job_id, kind, k):
    if kind not in FILE_KINDS:
        abort(404)
    job, song = own_song(job_id, k)
    name = song["files"].get(kind)             # (stems only where the job asked for them)
    path = state().runner.out_dir(job_id) / name if name else None
    if path is None or not path.is_file():
        abort(404)
    download = request.args.get("download") == "1"
    stem = Path(job["name"]).stem or "video"
    return send_file(path, mimetype=FILE_KINDS[kind], as_attachment=download,
                     download_name=f"{stem}_music_{k + 1}{DOWNLOAD_SUFFIX[kind]}", conditional=True)


@bp.get("/files/<job_id>/beats")
def beats(job_id):
    job, song = own_song(job_id, 0)
    name = song["files"].get("beats")
    path = state().runner.out_dir(job_id) / name if name else None
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/png", conditional=True)


# ---------------------------------------------------------------------- helpers
def public(job: dict) -> dict:
    """What the page gets of a job: no file paths, URLs instead."""
    out = {key: job[key] for key in ("id", "name", "status", "stage", "progress", "options", "created", "started",
                                     "finished", "error")}
    out["ahead"] = state().jobs.ahead(job["id"]) if job["status"] == "queued" else 0
    out["instrument_names"] = [soundtrack.INSTRUMENTS[i] for i in job["options"]["instruments"]]
    out["summary"] = soundtrack.describe(job["options"])
    songs = []
    for song in job["results"] or []:
        urls = {kind: url_for("soundtrack.job_file", job_id=job["id"], kind=kind, k=song["k"]) for kind in FILE_KINDS
                if song["files"].get(kind)}
        downloads = {kind: u + "?download=1" for kind, u in urls.items()}
        songs.append({**{k: v for k, v in song.items() if k != "files"}, "urls": urls, "downloads": downloads})
    out["results"] = songs
    has_beats = bool(job["results"]) and bool(job["results"][0]["files"].get("beats"))
    out["beats_url"] = url_for("soundtrack.beats", job_id=job["id"]) if has_beats else None
    return out


def safe_model(name: str) -> str:
    return secure_filename(name) or "model"
