"""The rating pages and their JSON: the blind listening test, creators' own ratings and A/B
comparisons, the summary and the CSV exports.

``/listen`` (listeners rate the listening-test clips, blind), ``/create`` (creators rate
their own results and the controls, and compare two models' results for the same video,
blind), ``/summary`` (mean, standard deviation, n and 95 % interval per model and
criterion: overall, per role and per listener level; A/B preferences), ``/ratings.csv`` and
``/comparisons.csv`` (every field), ``/api/ratings`` and ``/api/comparisons`` (POST),
``/api/summary``, ``/clips/<token>`` (a clip by its opaque token).

Blind: a listener's page names a clip only by its token (see :func:`webui.evalset.token`);
the server maps the token back to the clip, so no page, attribute or URL a listener sees
holds a model's folder name.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, render_template, request, send_file, session, url_for

from vidscore import cli
from vidscore.webui import evalset, ratings, soundtrack
from vidscore.webui.web import own_song, rater, secret, sid, state

bp = Blueprint("listening", __name__)


def clips() -> dict[str, evalset.Clip]:
    return evalset.scan(state().eval_dir)


def rating_context() -> dict:
    return dict(criteria=ratings.CRITERIA, scores=ratings.SCORES, levels=ratings.LEVELS,
                answers=ratings.ANSWERS, level=session.get("level"))


@bp.get("/listen")
def listen():
    found = clips()
    done = state().ratings.by_rater(rater(), "listener")
    items = []
    for i, c in enumerate(evalset.order_for(rater(), found)):
        tok = evalset.token(secret(), c.key)
        items.append({"key": tok, "label": f"Clip {i + 1}", "src": url_for("listening.clip", token=tok),
                      "rating": done.get(c.key)})
    return render_template("rate.html", role="listener", items=items, has_clips=bool(found),
                           **rating_context(), page="listen")


@bp.get("/create")
def create():
    st = state()
    done = st.ratings.by_rater(rater(), "creator")
    items = []
    for job in st.jobs.for_session(sid()):
        if job["status"] != "done":
            continue
        for song in job["results"]:
            key = f"job:{job['id']}/{song['k']}"
            items.append({"key": key, "label": f"{job['name']}, song {song['k'] + 1}",
                          "src": url_for("soundtrack.job_file", job_id=job["id"], kind="preview", k=song["k"]),
                          "controls": soundtrack.controls_asked(job["options"]), "rating": done.get(key)})
    compared = {c["item"]: c for c in st.ratings.comparisons(rater())}
    pairs = []
    for i, p in enumerate(evalset.pairs(clips(), rater())):
        before = compared.get(p.key)
        answers = {}
        if before:
            back = {p.a.model: "A", p.b.model: "B", "same": "same"}
            answers = {c: back.get(m, "") for c, m in before["choices"].items()}
        pairs.append({"key": evalset.token(secret(), p.key), "label": f"Comparison {i + 1}",
                      "a": url_for("listening.clip", token=evalset.token(secret(), p.a.key)),
                      "b": url_for("listening.clip", token=evalset.token(secret(), p.b.key)),
                      "answers": answers})
    return render_template("rate.html", role="creator", items=items, pairs=pairs, ab_answers=ratings.AB_ANSWERS,
                           **rating_context(), page="create")


@bp.get("/summary")
def summary():
    st = state()
    tables = [(title, pivot(st.ratings.summary(role=role, level=level))) for title, role, level in
              [("All ratings", None, None), ("Listeners", "listener", None), ("Creators", "creator", None)]
              + [(f"Level: {lv}", None, lv) for lv in ratings.LEVELS]]
    return render_template("summary.html", tables=tables, criteria=ratings.CRITERIA,
                           controls=st.ratings.control_summary(), answers=ratings.ANSWERS,
                           comparisons=st.ratings.comparison_summary(), page="summary")


@bp.get("/ratings.csv")
def ratings_csv():
    return Response(state().ratings.csv_text(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=ratings.csv"})


@bp.get("/comparisons.csv")
def comparisons_csv():
    return Response(state().ratings.comparisons_csv(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=comparisons.csv"})


@bp.post("/api/ratings")
def rate():
    st = state()
    data = ratings.rating_body(request.get_json(silent=True) or {})
    role, item = data.get("role"), str(data.get("item", ""))
    controls = None
    if role == "listener":
        clip = evalset.by_token(secret(), clips()).get(item)
        if clip is None:
            abort(404, "no such clip in the listening test")
        item, model = clip.key, clip.model
    elif role == "creator":
        job_id, _, k = item.removeprefix("job:").partition("/")
        job, _song = own_song(job_id, int(k) if k.isdigit() else -1)
        model = job["options"].get("model", st.cfg.model_name)
        controls = data.get("controls") or {}
        for key, what in soundtrack.controls_asked(job["options"]):
            if controls.get(key) not in ratings.ANSWERS:
                raise cli.UserError(f"say whether the music did what was asked: {what}")
    else:
        raise cli.UserError("role must be listener or creator")
    rid = st.ratings.save(rater=rater(), role=role, level=str(data.get("level", "")), item=item,
                          model=model, scores=data.get("scores") or {}, controls=controls)
    session["level"] = data.get("level")
    return jsonify(saved=True, id=rid)


@bp.post("/api/comparisons")
def compare():
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        raise cli.UserError("a comparison must be a JSON object with item, level and answers")
    found = {evalset.token(secret(), p.key): p for p in evalset.pairs(clips(), rater())}
    pair = found.get(str(data.get("item", "")))
    if pair is None:
        abort(404, "no such comparison")
    rid = state().ratings.save_comparison(rater=rater(), level=str(data.get("level", "")), item=pair.key,
                                          model_a=pair.a.model, model_b=pair.b.model,
                                          answers=data.get("answers") or {})
    session["level"] = data.get("level")
    return jsonify(saved=True, id=rid)


@bp.get("/api/summary")
def summary_json():
    st = state()
    return jsonify(summary=st.ratings.summary(), controls=st.ratings.control_summary(),
                   by_level={lv: st.ratings.summary(level=lv) for lv in ratings.LEVELS},
                   comparisons=st.ratings.comparison_summary())


@bp.get("/clips/<token>")
def clip(token):
    found = evalset.by_token(secret(), clips()).get(token)
    if found is None:
        abort(404)
    return send_file(state().previews.get(found), mimetype="video/mp4", conditional=True)


def pivot(rows: list[dict]) -> list[dict]:
    """Summary rows (model, criterion, n, mean, sd, interval) -> one row per model with a cell per criterion."""
    models: dict[str, dict] = {}
    for r in rows:
        models.setdefault(r["model"], {"model": r["model"], "cells": {}})["cells"][r["criterion"]] = r
    return list(models.values())
