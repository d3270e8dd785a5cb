"""The soundtrack and rating web apps: stores, options and routes directly, then the real
server in a subprocess driven by a real headless Chromium (Debian's chromium + chromedriver).

The browser tests upload a short synthetic video, wait for the job, play the preview and check
that audio was decoded, download the original result, rate as a creator and as a listener and
read the ratings back from the CSV export, check that a second browser sees none of the first
one's jobs, and that a non-video upload shows its error message.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from vidscore import cli
from vidscore import constants as D
from make_demo_video import render_demo
from conftest import save_tiny_checkpoint
from vidscore.model.cmt import load_checkpoint
from vidscore.webui import ratings as R
from vidscore.webui import soundtrack
from vidscore.webui.jobs import Cancelled, JobStore, Worker
from vidscore.webui.server import AppConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
WEBAPP = ROOT / "src" / "webapp.py"
HDR = {"X-Requested-With": "cmt"}
needs_av = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("fluidsynth")),
                              reason="ffmpeg and fluidsynth are installed by `make test` (scripts/system_deps.sh)")


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return Path(render_demo(str(tmp_path_factory.mktemp("video") / "clip.mp4"), seconds=4.0, fps=25,
                            width=320, height=180))


@pytest.fixture(scope="module")
def fake_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("fake") / "holiday.mp4"
    path.write_text("this is a text file with a video's name\n")
    return path


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


# ---------------------------------------------------------------------------------- jobs table and worker
def test_job_store_queue_sessions_and_restart(tmp_path):
    db = tmp_path / "jobs.sqlite3"
    store = JobStore(db)
    a1 = store.add("alice", "u1.mp4", "one.mp4", {"num_songs": 1})
    b1 = store.add("bob", "u2.mp4", "two.mp4", {"num_songs": 2})
    a2 = store.add("alice", "u3.mp4", "three.mp4", {"num_songs": 3})
    assert [j["id"] for j in store.for_session("alice")] == [a2, a1]          # newest first
    assert [j["id"] for j in store.for_session("bob")] == [b1]
    assert store.get(b1, session="alice") is None and store.get(b1, session="bob")["name"] == "two.mp4"
    assert [store.ahead(j) for j in (a1, b1, a2)] == [0, 1, 2]
    first = store.claim()
    assert first["id"] == a1 and first["status"] == "running"                 # oldest first
    assert [store.ahead(j) for j in (b1, a2)] == [1, 2]                       # the running one counts
    store.set_stage(a1, "composing")
    # the server dies here; a new one on the same file re-queues the running job, keeping its place
    store2 = JobStore(db)
    assert store2.requeue_interrupted() == 1
    again = store2.claim()
    assert again["id"] == a1 and again["options"] == {"num_songs": 1}
    store2.finish(a1, [{"k": 0}])
    assert store2.claim()["id"] == b1
    store2.fail(b1, "boom")
    done, failed = store2.get(a1), store2.get(b1)
    assert (done["status"], done["results"], done["error"]) == ("done", [{"k": 0}], None)
    assert (failed["status"], failed["error"]) == ("failed", "boom")
    assert store2.requeue_interrupted() == 0 and store2.pending() == 1


def test_job_store_upgrades_a_version_1_file(tmp_path):
    """A jobs file of the first schema (no progress, no cancel, no 'cancelled') keeps its jobs."""
    import sqlite3
    db = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(db) as con:
        con.executescript("""
            CREATE TABLE jobs (id TEXT PRIMARY KEY, session TEXT NOT NULL, status TEXT NOT NULL
              CHECK (status IN ('queued', 'running', 'done', 'failed')), stage TEXT NOT NULL, options TEXT NOT NULL,
              upload TEXT NOT NULL, name TEXT NOT NULL, created TEXT NOT NULL, started TEXT, finished TEXT,
              error TEXT, results TEXT);
            CREATE INDEX jobs_by_session ON jobs (session);
            CREATE INDEX jobs_by_status ON jobs (status);
            CREATE TABLE jobs_meta (key TEXT PRIMARY KEY, value TEXT);
            INSERT INTO jobs_meta VALUES ('schema_version', '1');
            INSERT INTO jobs VALUES ('a', 's', 'done', 'done', '{"num_songs": 1}', 'a.mp4', 'a.mp4', 't', NULL, NULL,
                                     NULL, '[{"k": 0}]');
            INSERT INTO jobs VALUES ('b', 's', 'queued', 'queued', '{}', 'b.mp4', 'b.mp4', 't', NULL, NULL, NULL, NULL);
        """)
    store = JobStore(db)
    assert [j["id"] for j in store.for_session("s")] == ["b", "a"]
    assert store.get("a")["results"] == [{"k": 0}] and store.get("a")["progress"] == 0
    assert store.cancel("b") == "cancelled" and store.get("b")["status"] == "cancelled"
    JobStore(db)                                                   # opening it again changes nothing
    assert [j["status"] for j in JobStore(db).for_session("s")] == ["cancelled", "done"]


def test_worker_runs_jobs_one_at_a_time_and_reports_errors(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    active, most, order = [0], [0], []
    lock = threading.Lock()

    def handler(job, stage):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            stage("working")
            assert store.get(job["id"])["stage"] == "working"
            time.sleep(0.05)
            order.append(job["name"])
            if job["name"] == "user":
                raise cli.UserError("that video has   no frames\nat all")
            if job["name"] == "bug":
                raise ZeroDivisionError("division by zero")
            return [{"k": 0, "name": job["name"]}]
        finally:
            with lock:
                active[0] -= 1

    names = ["a", "user", "bug", "b", "c"]
    ids = [store.add("s", f"{n}.mp4", n, {}) for n in names]
    worker = Worker(store, handler, poll_s=0.05).start()
    try:
        deadline = time.time() + 20
        while store.pending() and time.time() < deadline:
            worker.notify()
            time.sleep(0.05)
    finally:
        worker.stop(timeout=10)
    assert order == names and most[0] == 1
    jobs = {j["name"]: j for j in (store.get(i) for i in ids)}
    assert jobs["a"]["status"] == "done" and jobs["a"]["results"] == [{"k": 0, "name": "a"}]
    assert (jobs["user"]["status"], jobs["user"]["error"]) == ("failed", "that video has no frames at all")
    assert jobs["bug"]["status"] == "failed" and jobs["bug"]["error"].startswith("internal error (ZeroDivisionError")
    assert jobs["c"]["status"] == "done"                                       # the worker survived both


# ---------------------------------------------------------------------------------- ratings
def _scores(**over):
    s = dict(rhythm=3.0, emotion=3.0, richness=3.0, correctness=3.0, structure=3.0, overall=3.0)
    s.update(over)
    return s


def test_ratings_store_summary_csv_and_validation(tmp_path):
    store = R.RatingStore(tmp_path / "r.sqlite3")
    store.save(rater="r1", role="listener", level="amateur", item="eval:A/x.mp4", model="A",
               scores=_scores(rhythm=4.5, overall=2.0))
    store.save(rater="r2", role="listener", level="professional", item="eval:A/x.mp4", model="A",
               scores=_scores(rhythm=3.0, overall="5"))
    store.save(rater="r1", role="listener", level="amateur", item="eval:B/y.mp4", model="B",
               scores=_scores(rhythm=0.5))
    # r1 rates B again: replaces, not adds
    store.save(rater="r1", role="listener", level="amateur", item="eval:B/y.mp4", model="B",
               scores=_scores(rhythm=1.5))
    store.save(rater="r3", role="creator", level="non-musician", item="job:abc/0", model="A",
               scores=_scores(rhythm=1.0), controls={"tempo": "yes", "visual_beats": "partly"})
    cells = {(r["model"], r["criterion"]): (r["mean"], r["count"]) for r in store.summary()}
    assert cells[("A", "rhythm")] == pytest.approx(((4.5 + 3.0 + 1.0) / 3, 3))
    assert cells[("A", "overall")] == pytest.approx(((2.0 + 5.0 + 3.0) / 3, 3))
    assert cells[("B", "rhythm")] == (1.5, 1)
    listeners = {(r["model"], r["criterion"]): (r["mean"], r["count"]) for r in store.summary("listener")}
    assert listeners[("A", "rhythm")] == (3.75, 2)
    # spread and 95 % interval, by hand: A's rhythm is 4.5, 3.0, 1.0 -> mean 17/6, sd sqrt(sum sq dev / 2)
    a = {r["criterion"]: r for r in store.summary() if r["model"] == "A"}["rhythm"]
    dev = [x - 17 / 6 for x in (4.5, 3.0, 1.0)]
    sd = (sum(d * d for d in dev) / 2) ** 0.5
    half = 4.302652729911275 * sd / 3 ** 0.5                 # t(0.975, 2 degrees of freedom)
    assert (a["n"], a["mean"], a["sd"]) == (3, pytest.approx(17 / 6), pytest.approx(sd))
    assert (a["ci_low"], a["ci_high"]) == (pytest.approx(17 / 6 - half), pytest.approx(17 / 6 + half))
    b = {r["criterion"]: r for r in store.summary() if r["model"] == "B"}["rhythm"]
    assert (b["n"], b["mean"], b["sd"], b["ci_low"]) == (1, 1.5, None, None)   # one rating: no spread
    amateur = {(r["model"], r["criterion"]): (r["mean"], r["n"]) for r in store.summary(level="amateur")}
    assert amateur[("A", "rhythm")] == (4.5, 1) and amateur[("B", "rhythm")] == (1.5, 1)
    assert {r["model"] for r in store.summary(level="professional")} == {"A"}
    # A/B comparisons: stored by model name whichever side it was shown on
    answers = {k: "A" for k in R.CRITERION_KEYS}
    store.save_comparison(rater="r1", level="amateur", item="ab:x.mp4|A|B", model_a="B", model_b="A",
                          answers={**answers, "overall": "same"})
    store.save_comparison(rater="r2", level="amateur", item="ab:x.mp4|A|B", model_a="A", model_b="B",
                          answers={**answers, "rhythm": "B"})
    cells = {c["criterion"]: c for c in store.comparison_summary()}
    assert (cells["rhythm"]["model_1"], cells["rhythm"]["wins_1"], cells["rhythm"]["wins_2"]) == ("A", 0, 2)
    assert (cells["overall"]["wins_1"], cells["overall"]["same"], cells["overall"]["n"]) == (1, 1, 2)
    rows = list(csv.DictReader(io.StringIO(store.comparisons_csv())))
    assert [(r["model_a"], r["preferred_rhythm"], r["preferred_overall"]) for r in rows] == \
        [("B", "B", "same"), ("A", "B", "A")]
    with pytest.raises(cli.UserError, match="which is better"):
        store.save_comparison(rater="r3", level="amateur", item="ab:x", model_a="A", model_b="B", answers={})
    assert store.control_summary() == [
        {"model": "A", "control": "visual_beats", "yes": 0, "partly": 1, "no": 0, "count": 1},
        {"model": "A", "control": "tempo", "yes": 1, "partly": 0, "no": 0, "count": 1}]
    rows = list(csv.DictReader(io.StringIO(store.csv_text())))
    assert [r["item"] for r in rows] == ["eval:A/x.mp4", "eval:A/x.mp4", "eval:B/y.mp4", "job:abc/0"]
    assert tuple(rows[0]) == R.CSV_COLUMNS
    assert (rows[2]["rhythm"], rows[2]["level"], rows[2]["control_tempo"]) == ("1.5", "amateur", "")
    assert (rows[3]["role"], rows[3]["control_tempo"], rows[3]["control_visual_beats"],
            rows[3]["control_instruments"]) == ("creator", "yes", "partly", "")
    for bad in (0, 0.25, 5.5, "x", None):
        with pytest.raises(cli.UserError):
            store.save(rater="r9", role="listener", level="amateur", item="i", model="A", scores=_scores(richness=bad))
    with pytest.raises(cli.UserError, match="musical background|non-musician"):
        store.save(rater="r9", role="listener", level="expert", item="i", model="A", scores=_scores())
    with pytest.raises(cli.UserError):
        store.save(rater="r9", role="creator", level="amateur", item="i", model="A", scores=_scores(),
                   controls={"tempo": "maybe"})
    assert len(store.all()) == 4
    # the schema itself refuses scores off the half-point grid
    import sqlite3
    with sqlite3.connect(tmp_path / "r.sqlite3") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO ratings (created, updated, rater, role, level, item, model, rhythm, emotion, "
                   "richness, correctness, structure, overall) VALUES ('t','t','z','listener','amateur','i','A',"
                   "2.25,3,3,3,3,3)")


# ---------------------------------------------------------------------------------- options
class _Model:
    def __init__(self, vocab=None):
        self.vocab = vocab
        self.config = SimpleNamespace(preset="bmt" if "emotions" in (vocab or {}) else "cmt", init_n_class=[7, 25, 6])


def test_key_genre_and_timbre_choices_follow_the_model(tmp_path, tiny_ckpt):
    model = load_checkpoint(tiny_ckpt)
    model.vocab = {"instruments": [2, 4], "keys": [1, 10, 13], "genres": [3, 5]}
    assert soundtrack.key_choices(model) == [(k, D.KEY_NAMES[k]) for k in (1, 10, 13)]
    assert soundtrack.genre_choices(model) == [(3, D.GENRES[3]), (5, D.GENRES[5])]
    o = soundtrack.parse_options({"key": "10", "genre": "5"}, ["2"], model, 5)
    assert (o["key"], o["genre"]) == (10, 5)
    opts = soundtrack.pipeline_options(o, tmp_path, model)
    assert (opts.key, opts.genre) == (10, 5)
    for fields, message in [({"key": "2"}, "^the key: .*never saw"), ({"genre": "4"}, "^the genre: .*not trained with")]:
        with pytest.raises(cli.UserError, match=message):        # the page's words, not the CLI's flags
            soundtrack.parse_options(fields, ["2"], model, 5)
    html = create_app(AppConfig(data_dir=tmp_path / "k", model=model, start_worker=False)).test_client().get("/")
    html = html.get_data(as_text=True)
    assert 'id="key"' in html and f'<option value="10">{D.KEY_NAMES[10]}</option>' in html
    assert f'<option value="2">{D.KEY_NAMES[2]}</option>' not in html and 'id="genre"' in html
    # only the instruments the model knows are pre-checked
    checked = {i: f'id="instr-{i}" name="instruments" value="{i}"\n      checked' in html for i in range(1, 6)}
    assert checked == {1: False, 2: True, 3: False, 4: True, 5: False}
    # the GM programs, grouped by family: 16 families of 8, names from pretty_midi
    groups = soundtrack.gm_programs()
    assert [len(g[1]) for g in groups] == [8] * 16 and groups[0][0] == "Piano" and groups[5][0] == "Strings"
    assert groups[5][1][0] == (40, "Violin") and html.count('<optgroup label="Organ">') == 2   # one per pitched track it knows (Piano, Bass)
    assert '<option value="33" selected>33 Electric Bass (finger)</option>' in html   # the default bass sound


def test_forced_beats_in_seconds():
    # 120 bpm: a bar lasts 2 s, a bar-beat (16th) 0.125 s; bar 1 beat 5 starts at 2 + 4 * 0.125 = 2.5 s
    report = {"tempo": 120.0, "forced_beats": [[0, 1, 3, 1], [1, 5, 2, 1], [1, 5, 2, 2], [2, 16, 1, 1]]}
    assert soundtrack.forced_times(report) == [0.0, 2.5, 4 + 15 * 0.125]


def test_soundtrack_page_offers_emotion_only_when_the_model_has_it(tmp_path, tiny_ckpt):
    model = load_checkpoint(tiny_ckpt)
    page = create_app(AppConfig(data_dir=tmp_path / "a", model=model, start_worker=False)).test_client().get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="video-file"' in html and 'id="emotion"' not in html
    model.vocab = {"instruments": [1, 2, 3, 4, 5], "emotions": [1, 2, 3, 4]}   # a cmt model has no emotion field
    html = create_app(AppConfig(data_dir=tmp_path / "b", model=model, start_worker=False)).test_client().get("/")
    assert 'id="emotion"' not in html.get_data(as_text=True)
    bmt = load_checkpoint(save_tiny_checkpoint(tmp_path / "bmt.pt", preset="bmt", vocab={"emotions": [0, 1, 3]}))
    html = create_app(AppConfig(data_dir=tmp_path / "c", model=bmt, start_worker=False)).test_client().get("/")
    html = html.get_data(as_text=True)
    assert 'id="emotion"' in html and '<option value="Q1">' in html and '<option value="Q3">' in html
    assert '<option value="Q2">' not in html and '<option value="Q4">' not in html   # not in its training data


def test_parse_options_and_pipeline_options(tmp_path):
    plain = _Model({"instruments": [1, 2, 3, 4, 5]})
    o = soundtrack.parse_options({"threshold": "4", "num_songs": "2", "tempo_mode": "auto", "seed": "7"},
                                 ["2", "1", "2"], plain, max_songs=5)
    assert o == {"threshold": 4, "tempo": None, "num_songs": 2, "instruments": [1, 2], "emotion": None, "seed": 7,
                 "key": None, "genre": None, "programs": {}, "keep_audio": False, "music_gain_db": -6.0,
                 "stems": False}
    opts = soundtrack.pipeline_options(o, tmp_path, plain)
    assert (opts.tempo, opts.min_strength, opts.instruments, opts.num_songs, opts.seed, opts.render, opts.stems) == \
        (None, 4, (1, 2), 2, 7, False, False)
    with_stems = soundtrack.parse_options({"stems": "1"}, ["1"], plain, 5)
    assert with_stems["stems"] is True and soundtrack.pipeline_options(with_stems, tmp_path, plain).stems is True
    assert "stems" in soundtrack.describe(with_stems) and "stems" not in soundtrack.describe(o)
    assert (opts.keep_audio, opts.programs, opts.key, opts.genre) == (False, None, None, None)
    o = soundtrack.parse_options({"program_Piano": "19", "program_Drums": "5", "keep_audio": "1",
                                  "music_gain_db": "-12"}, ["1", "2", "3"], plain, 5)
    assert (o["programs"], o["keep_audio"], o["music_gain_db"]) == ({"Piano": 19}, True, -12.0)
    opts = soundtrack.pipeline_options(o, tmp_path, plain)
    assert opts.programs == {"Drums": 0, "Piano": 19, "Guitar": 24, "Bass": 33, "Strings": 41}
    assert (opts.keep_audio, opts.music_gain_db, opts.loudness) == (True, -12.0, -16.0)
    new = soundtrack.new_seed(o)
    assert new["seed"] != o["seed"] and {**new, "seed": o["seed"]} == o
    manual = soundtrack.parse_options({"tempo_mode": "manual", "tempo": "96.5"}, ["5"], plain, 5)
    assert manual["tempo"] == 96.5 and manual["threshold"] == soundtrack.DEFAULT_THRESHOLD
    assert 0 <= manual["seed"] < 2**31
    assert soundtrack.pipeline_options(manual, tmp_path, plain).tempo == 96.5
    keyless = _Model({"instruments": [1, 2, 3, 4, 5]})
    keyless.config.init_n_class = [7, 1, 6]           # trained without key labels
    with pytest.raises(cli.UserError, match="no key control"):
        soundtrack.parse_options({"key": "1"}, ["2"], keyless, 5)
    for fields, instruments, message in [
            ({"tempo_mode": "manual", "tempo": "fast"}, ["1"], "number of beats"),
            ({"tempo_mode": "manual", "tempo": "300"}, ["1"], "32 to 224"),
            ({"threshold": "0"}, ["1"], "threshold"),
            ({"num_songs": "6"}, ["1"], "number of songs"),
            ({}, [], "at least one instrument"),
            ({}, ["9"], "instrument"),
            ({"program_Piano": "128"}, ["2"], "Piano sound"),
            ({"music_gain_db": "loud"}, ["2"], "music level"),
            ({"emotion": "Q1"}, ["1"], "no emotion control")]:
        with pytest.raises(cli.UserError, match=message):
            soundtrack.parse_options(fields, instruments, plain, 5)
    # a checkpoint with an emotion vocabulary offers the control
    emo = _Model({"emotions": [1, 2, 3, 4]})
    assert soundtrack.emotions(emo) == ["Q1", "Q2", "Q3", "Q4"] and soundtrack.emotions(plain) == []
    with pytest.raises(cli.UserError, match="unknown emotion"):
        soundtrack.parse_options({"emotion": "Q5"}, ["1"], emo, 5)
    o = soundtrack.parse_options({"emotion": "Q2"}, ["1"], emo, 5)
    assert o["emotion"] == "Q2"
    assert soundtrack.pipeline_options(o, tmp_path, emo).emotion == 2     # Q2's id in the init tokens
    asked = dict(soundtrack.controls_asked(o))
    assert set(asked) == {"visual_beats", "tempo", "instruments", "emotion"}
    assert asked["instruments"] == "instruments: Drums" and asked["tempo"] == "tempo follows the video"


# ---------------------------------------------------------------------------------- routes (Flask test client)
@pytest.fixture
def app(tmp_path, tiny_ckpt):
    return create_app(AppConfig(data_dir=tmp_path / "data", model=load_checkpoint(tiny_ckpt), model_name="tiny",
                                max_upload_mb=0.5, start_worker=False))


def _upload(client, path, name=None, **fields):
    data = {"threshold": "2", "num_songs": "1", "tempo_mode": "auto", "instruments": ["1", "2"], **fields}
    with open(path, "rb") as f:
        data["video"] = (f, name or Path(path).name)
        return client.post("/api/jobs", data=data, headers=HDR, content_type="multipart/form-data")


def test_upload_checks_names_and_sessions(app, video, fake_video, tmp_path):
    uploads = Path(app.extensions["cmt"].data_dir) / "uploads"
    alice, bob = app.test_client(), app.test_client()
    res = _upload(alice, video, name="../../My holiday (final).MP4")
    assert res.status_code == 201, res.get_json()
    job = res.get_json()["job"]
    stored = [p.name for p in uploads.iterdir()]
    assert stored == [f"{job['id']}.mp4"]                     # a generated name, never the user's
    assert job["name"] == "My_holiday_final.MP4" and job["status"] == "queued"
    assert job["options"]["instruments"] == [1, 2] and job["options"]["model"] == "tiny"
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 200
    assert bob.get(f"/api/jobs/{job['id']}").status_code == 404        # another browser sees nothing
    assert bob.get("/api/jobs").get_json()["jobs"] == []
    assert [j["id"] for j in alice.get("/api/jobs").get_json()["jobs"]] == [job["id"]]

    res = _upload(alice, fake_video)                             # a .mp4 that is no video
    assert res.status_code == 400
    assert "'holiday.mp4' is not a video that can be read" in res.get_json()["error"]
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    res = _upload(alice, notes)
    assert res.status_code == 400 and "'notes.txt' is not a video file" in res.get_json()["error"]
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 600_000)                             # over the 0.5 MB limit of this app
    res = _upload(alice, big)
    assert res.status_code == 413 and "limited to 0.5 MB" in res.get_json()["error"]
    res = _upload(alice, video, tempo_mode="manual", tempo="500")
    assert res.status_code == 400 and "tempo" in res.get_json()["error"]
    assert len(list(uploads.iterdir())) == 1                     # rejected uploads are not kept
    # POSTs without the pages' header are refused (another site cannot submit for you)
    with open(video, "rb") as f:
        res = alice.post("/api/jobs", data={"video": (f, "v.mp4"), "instruments": "1"},
                         content_type="multipart/form-data")
    assert res.status_code == 403
    assert alice.post("/api/ratings", json={"role": "listener"}).status_code == 403
    # files of a job that is not finished (or not yours) are not served
    assert alice.get(f"/files/{job['id']}/video/0").status_code == 404
    assert alice.get("/files/../../etc/passwd").status_code == 404
    # regenerate: the same video and settings, a new seed, a new job with its own copy of the upload
    res = alice.post(f"/api/jobs/{job['id']}/regenerate", headers=HDR)
    assert res.status_code == 201
    again = res.get_json()["job"]
    assert again["id"] != job["id"] and again["name"] == job["name"]
    assert {**again["options"], "seed": 0} == {**job["options"], "seed": 0} and again["options"]["seed"] != job["options"]["seed"]
    assert bob.post(f"/api/jobs/{job['id']}/regenerate", headers=HDR).status_code == 404
    assert len(list(uploads.iterdir())) == 2
    # cancel a queued job: at once; then delete it with its upload; the other job keeps its video
    assert alice.post(f"/api/jobs/{job['id']}/cancel", headers=HDR).get_json()["job"]["status"] == "cancelled"
    assert alice.post(f"/api/jobs/{job['id']}/cancel", headers=HDR).status_code == 400     # already ended
    assert bob.delete(f"/api/jobs/{again['id']}", headers=HDR).status_code == 404
    assert alice.delete(f"/api/jobs/{job['id']}").status_code == 403                      # not from the page
    assert alice.delete(f"/api/jobs/{job['id']}", headers=HDR).get_json() == {"deleted": True}
    assert [j["id"] for j in alice.get("/api/jobs").get_json()["jobs"]] == [again["id"]]
    assert [p.name for p in uploads.iterdir()] == [f"{again['id']}.mp4"]
    # a running job is asked to stop, and cannot be deleted until it has
    store = app.extensions["cmt"].jobs
    assert store.claim()["id"] == again["id"]
    assert alice.post(f"/api/jobs/{again['id']}/cancel", headers=HDR).get_json()["job"]["stage"] == "cancelling"
    assert alice.delete(f"/api/jobs/{again['id']}", headers=HDR).status_code == 400
    with pytest.raises(Cancelled):
        store.set_stage(again["id"], "composing", 0.5)
    # the site icon
    icon = alice.get("/favicon.ico")
    assert icon.status_code == 200 and icon.data[:4] == b"\0\0\1\0"      # an ICO file


# ---------------------------------------------------------------------------------- the real server in Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists()
                                                else None)
needs_browser = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                   reason="chromium and chromium-driver are not installed "
                                          "(scripts/install_browser.sh installs them)")


class Server:
    """src/webapp.py in a subprocess on a free port (--port 0; the port is read from its output)."""

    def __init__(self, ckpt, data_dir, env):
        self.args = [sys.executable, str(WEBAPP), "--ckpt", str(ckpt), "--data_dir", str(data_dir),
                     "--port", "0", "--model_name", "tiny"]
        self.env = env
        self.proc = None
        self.lines: list[str] = []

    def start(self, timeout=60):
        self.lines = []
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=self.env)
        threading.Thread(target=lambda: [self.lines.append(ln) for ln in self.proc.stdout], daemon=True).start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ln in list(self.lines):
                if "serving on http://" in ln:
                    self.url = ln.split("serving on ")[1].split()[0].rstrip("/")
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError("the web app did not start:\n" + "".join(self.lines))

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self):
        return "".join(self.lines)


@pytest.fixture(scope="module")
def server(tiny_ckpt, video, tmp_path_factory):
    data = tmp_path_factory.mktemp("webapp_data")
    for model in ("modelA", "modelB"):                           # two models' clips of the same video (no audio)
        clip_dir = data / "eval_set" / model
        clip_dir.mkdir(parents=True)
        shutil.copy(video, clip_dir / "clip_a.mp4")
    env = dict(os.environ, CMT_CACHE_DIR=str(tmp_path_factory.mktemp("cache")), CMT_NO_PROGRESS="1")
    srv = Server(tiny_ckpt, data, env).start()
    yield srv
    srv.stop()


def _chrome(profile: Path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: .venv/bin/pip install -r py3_requirements.txt")

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browsers(tmp_path_factory):
    made = []

    def make():
        made.append(_chrome(tmp_path_factory.mktemp("profile")))
        return made[-1]

    yield make
    for d in made:
        d.quit()


@pytest.fixture(scope="module")
def browser(browsers):
    return browsers()


def _wait(driver, cond, timeout=30, what="condition"):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page redraws a job's card when it changes, so an element found a moment ago may be gone
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
                         ).until(cond, message=f"timed out waiting for {what}")


def _submit_video(driver, url, path, *, tempo=None, instruments_off=(), threshold=None, songs=None, programs=None,
                  keep_audio=False, stems=False):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url + "/")
    for track, program in (programs or {}).items():
        Select(driver.find_element(By.ID, f"program-{track}")).select_by_value(str(program))
    if keep_audio:
        driver.find_element(By.ID, "keep-audio").click()
    if stems:
        driver.find_element(By.ID, "stems").click()
    driver.find_element(By.ID, "video-file").send_keys(str(path))
    if songs is not None:
        n = driver.find_element(By.ID, "num-songs")
        n.clear()
        n.send_keys(str(songs))
    if threshold is not None:
        driver.execute_script("const t = document.getElementById('threshold'); t.value = arguments[0];"
                              "t.dispatchEvent(new Event('input'));", threshold)
    if tempo is not None:
        driver.find_element(By.ID, "tempo-manual").click()
        bpm = driver.find_element(By.ID, "tempo-bpm")
        bpm.clear()
        bpm.send_keys(str(tempo))
    for i in instruments_off:
        driver.find_element(By.ID, f"instr-{i}").click()
    driver.find_element(By.ID, "submit").click()
    return driver.find_element(By.ID, "message")


def _job_ids(driver):
    return driver.execute_script("return [...document.querySelectorAll('article.job')].map(c => c.dataset.id);")


def _submitted_job(driver):
    """The id of the job this page just submitted, once its card is drawn (the card list is redrawn a moment
    after the submission's message, so the first card may still be an older job's)."""
    job_id = driver.execute_script("return sessionStorage.getItem('cmt-followed');")
    assert job_id, "the page follows no job"
    _wait(driver, lambda d: _job_status(d, job_id) is not None, what="the submitted job's card")
    return job_id


def _job_status(driver, job_id=None):
    """The status of the job's card (or of the first card); None while there is none."""
    sel = f'article.job[data-id="{job_id}"]' if job_id else "article.job"
    return driver.execute_script("const c = document.querySelector(arguments[0]);"
                                 "return c ? c.dataset.status : null;", sel)


def _fetch_text(driver, path):
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {cache: 'no-store'}).then(r => r.text()).then(done, e => done('ERROR ' + e));", path)


def _play(driver, css):
    """Play the first matching <video> muted for ~1.5 s; what the element decoded."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const v = document.querySelector(arguments[0]);
        v.muted = true;
        const report = () => done({ready: v.readyState, duration: v.duration, time: v.currentTime,
                                   audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount,
                                   error: v.error ? v.error.code : null});
        v.play().then(() => setTimeout(report, 1500), e => done({error: String(e)}));
    """, css)


@needs_av
@needs_browser
def test_browser_soundtrack_job_plays_with_audio_and_downloads(server, browser, video, tmp_path):
    from selenium.webdriver.common.by import By

    programs = {"Piano": 19, "Guitar": 25, "Bass": 34}
    msg = _submit_video(browser, server.url, video, threshold=3, instruments_off=(5,), programs=programs,
                        keep_audio=True)
    _wait(browser, lambda d: "queue" in msg.text or "running" in msg.text or "error" in (msg.get_attribute("class") or ""),
          what="upload")
    assert "in the queue" in msg.text or "running" in msg.text, msg.text
    job_id = _submitted_job(browser)
    assert _job_ids(browser) == [job_id]
    browser.refresh()                                            # the job survives a reload
    _wait(browser, lambda d: _job_status(d, job_id) is not None, what="the job after a reload")
    _wait(browser, lambda d: _job_status(d, job_id) in ("done", "failed"), timeout=150, what="the job to finish")
    card = browser.find_element(By.CSS_SELECTOR, f'article.job[data-id="{job_id}"]')
    assert _job_status(browser, job_id) == "done", card.text + "\n" + server.log()
    assert "threshold 3" in card.text and "automatic tempo" in card.text and "Strings" not in card.text
    assert "Piano: Church Organ" in card.text and "video's sound kept" in card.text
    assert "audio: aac" in card.text                             # ffprobe of the preview, shown on the page
    assert browser.find_element(By.ID, "message").text == "Your music is ready: play or download it below."
    # the beats picture, drawn and shown
    img = card.find_element(By.CSS_SELECTOR, "img.beats")
    _wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img),
          what="the beats picture")
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 300

    state = _play(browser, f'article.job[data-id="{job_id}"] video.preview')
    assert state["error"] is None, state
    assert state["ready"] >= 2 and state["time"] > 0 and abs(state["duration"] - 4.0) < 0.3, state
    assert state["video"] > 0 and state["audio"] > 0, state      # Chromium decoded an audio track

    # the download is the original result: the video stream as uploaded (MPEG-4 Part 2) + AAC
    href = card.find_element(By.CSS_SELECTOR, "a.download-video").get_attribute("href")
    cookie = browser.get_cookie("cmt_session")["value"]
    req = urllib.request.Request(href, headers={"Cookie": f"cmt_session={cookie}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert 'filename=clip_music_1.mp4' in r.headers["Content-Disposition"]
        (tmp_path / "dl.mp4").write_bytes(r.read())
    streams = ffprobe(tmp_path / "dl.mp4")
    assert streams["video"]["codec_name"] == ffprobe(video)["video"]["codec_name"]
    assert streams["audio"]["codec_name"] == "aac"
    with pytest.raises(urllib.error.HTTPError) as e:           # not without this browser's session
        urllib.request.urlopen(href, timeout=30)
    assert e.value.code == 404
    # the sounds chosen per track are the MIDI's programs
    href = card.find_element(By.CSS_SELECTOR, "a.download-midi").get_attribute("href")
    with urllib.request.urlopen(urllib.request.Request(href, headers={"Cookie": f"cmt_session={cookie}"}),
                                timeout=30) as r:
        (tmp_path / "dl.mid").write_bytes(r.read())
    import miditoolkit
    pitched = [i.program for i in miditoolkit.MidiFile(str(tmp_path / "dl.mid")).instruments if not i.is_drum]
    assert pitched and set(pitched) <= set(programs.values()), pitched


@pytest.mark.slow
@needs_av
@needs_browser
def test_browser_stems_come_as_a_zip_when_asked(server, browsers, video, tmp_path):
    """A job with the stems box ticked offers a zip of one WAV per instrument of its MIDI, each as
    long as the song's WAV and summing to it; a job without offers no zip.  (A browser of its
    own: the later tests count the first browser's jobs and results.)"""
    browser = browsers()
    import wave
    import zipfile

    import numpy as np
    from selenium.webdriver.common.by import By

    from vidscore.music import representation as Rep
    cookie = lambda: {"Cookie": f"cmt_session={browser.get_cookie('cmt_session')['value']}"}   # noqa: E731

    def fetch(href, path):
        with urllib.request.urlopen(urllib.request.Request(href, headers=cookie()), timeout=30) as r:
            path.write_bytes(r.read())
            return r.headers

    def pcm(data):
        with wave.open(io.BytesIO(data)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int64)

    for asked in (True, False):
        msg = _submit_video(browser, server.url, video, threshold=3, stems=asked)
        _wait(browser, lambda d: "queue" in msg.text or "running" in msg.text or "error" in (msg.get_attribute("class")
                                                                                           or ""), what="upload")
        job_id = _submitted_job(browser)
        _wait(browser, lambda d: _job_status(d, job_id) in ("done", "failed"), timeout=150, what="the job to finish")
        card = browser.find_element(By.CSS_SELECTOR, f'article.job[data-id="{job_id}"]')
        assert _job_status(browser, job_id) == "done", card.text + "\n" + server.log()
        links = card.find_elements(By.CSS_SELECTOR, "a.download-stems")
        assert len(links) == int(asked), card.text
        if not asked:
            break
        assert "stems" in card.text and links[0].text == "stems (zip of WAVs)"
        headers = fetch(links[0].get_attribute("href"), tmp_path / "stems.zip")
        assert "filename=clip_music_1_stems.zip" in headers["Content-Disposition"]
        fetch(card.find_element(By.CSS_SELECTOR, "a.download-audio").get_attribute("href"), tmp_path / "mix.wav")
        fetch(card.find_element(By.CSS_SELECTOR, "a.download-midi").get_attribute("href"), tmp_path / "song.mid")
        midi = Rep.load_midi(tmp_path / "song.mid")
        classes = sorted({Rep.instrument_class(i.name, i.program, i.is_drum) for i in midi.instruments if i.notes})
        with zipfile.ZipFile(tmp_path / "stems.zip") as z:
            names = z.namelist()
            parts = [pcm(z.read(n)) for n in names]
        stem = names[0].rsplit("_", 1)[0]
        assert names == [f"{stem}_{D.INSTRUMENTS[c - 1]}.wav" for c in classes], names
        mix = pcm((tmp_path / "mix.wav").read_bytes())
        assert all(len(p) == len(mix) for p in parts) and np.array_equal(sum(parts), mix)


@needs_av
@needs_browser
def test_browser_page_fits_a_phone(server, browser):
    """At 390 px (a phone) nothing scrolls sideways and the player and the links are in view."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    try:
        for path in ("/", "/listen", "/create", "/summary"):
            browser.get(server.url + path)
            if path == "/":
                _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "article.job video.preview"),
                      what="the finished job")
            width = browser.execute_script("return window.innerWidth")
            assert width <= 390
            sizes = browser.execute_script("return [document.documentElement.scrollWidth, document.body.scrollWidth]")
            assert max(sizes) <= width, (path, sizes, width)
            if path == "/":
                for css in ("video.preview", "a.download-video", "a.download-midi", "a.download-audio",
                            "img.beats", "button.job-regenerate"):
                    rect = browser.execute_script("const r = document.querySelector(arguments[0])"
                                                  ".getBoundingClientRect(); return [r.left, r.right, r.width];", css)
                    assert rect[0] >= 0 and rect[1] <= width and rect[2] > 0, (css, rect)
    finally:
        browser.set_window_size(1200, 900)
    assert json.loads(_fetch_text(browser, "/api/health"))["ok"] is True
    assert _fetch_text(browser, "/favicon.ico")[:1] != "<"                  # an icon, not an error page


@needs_av
@needs_browser
def test_browser_second_browser_sees_only_its_own_jobs(server, browsers):
    from selenium.webdriver.common.by import By

    other = browsers()
    other.get(server.url + "/")
    _wait(other, lambda d: d.find_element(By.ID, "no-jobs").is_displayed(), what="the empty job list")
    assert other.find_elements(By.CSS_SELECTOR, "article.job") == []
    assert json.loads(_fetch_text(other, "/api/jobs")) == {"jobs": []}


@needs_av
@needs_browser
def test_browser_non_video_upload_shows_the_error(server, browser, fake_video):
    msg = _submit_video(browser, server.url, fake_video)
    _wait(browser, lambda d: "error" in (msg.get_attribute("class") or ""), what="the error message")
    assert "'holiday.mp4' is not a video that can be read" in msg.text


def _rate(driver, form, level, scores, controls=None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.find_element(By.ID, f"level-{level}").click()
    for key, value in scores.items():
        Select(form.find_element(By.CSS_SELECTOR, f'select[name="{key}"]')).select_by_value(f"{value:.1f}")
    for key, answer in (controls or {}).items():
        form.find_element(By.CSS_SELECTOR, f'input[name="control_{key}"][value="{answer}"]').click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    msg = form.find_element(By.CSS_SELECTOR, ".msg")
    _wait(driver, lambda d: msg.text, what="the rating's answer")
    return msg.text


@needs_av
@needs_browser
def test_browser_ratings_reach_the_csv_and_summary(server, browser, browsers):
    from selenium.webdriver.common.by import By

    # creator: rates the result made in the first test, and the controls
    browser.get(server.url + "/create")
    forms = browser.find_elements(By.CSS_SELECTOR, "form.rating")
    assert len(forms) == 1, browser.page_source[:2000]
    creator_scores = dict(rhythm=4.5, emotion=3.0, richness=2.5, correctness=5.0, structure=1.0, overall=3.5)
    controls = dict(visual_beats="yes", tempo="partly", instruments="no")
    assert _rate(browser, forms[0], "amateur", creator_scores, controls) == "Saved."
    # A/B: the two models' clips of the same video, blind
    pair = browser.find_element(By.CSS_SELECTOR, "form.ab")
    page = browser.page_source
    assert "modelA" not in page and "modelB" not in page and "clip_a" not in page
    for key, _name, _q in R.CRITERIA:
        pair.find_element(By.CSS_SELECTOR, f'input[name="ab_{key}"][value="{"B" if key == "rhythm" else "A"}"]').click()
    pair.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: pair.find_element(By.CSS_SELECTOR, ".msg").text, what="the comparison's answer")
    assert pair.find_element(By.CSS_SELECTOR, ".msg").text == "Saved."
    ab = list(csv.DictReader(io.StringIO(_fetch_text(browser, "/comparisons.csv"))))
    assert len(ab) == 1 and {ab[0]["model_a"], ab[0]["model_b"]} == {"modelA", "modelB"}
    assert (ab[0]["preferred_rhythm"], ab[0]["preferred_overall"]) == (ab[0]["model_b"], ab[0]["model_a"])
    # listener: a listening-test clip (a preview is made for it on first play), blind: no model name in
    # the page, its attributes or its URLs
    browser.get(server.url + "/listen")
    assert len(browser.find_elements(By.CSS_SELECTOR, "form.rating")) == 2
    seen = browser.page_source + " ".join(browser.execute_script(
        "return [location.href, ...[...document.querySelectorAll('[src],[href]')].map(e => e.src || e.href)]"))
    assert "modelA" not in seen and "modelB" not in seen and "clip_a" not in seen and "eval:" not in seen
    assert "/summary" not in seen and ".csv" not in seen                  # nor links to the pages that name them
    form = browser.find_element(By.CSS_SELECTOR, "form.rating")
    token = form.get_attribute("data-item")
    _wait(browser, lambda d: d.execute_script("return document.querySelector('form.rating video').readyState") >= 1,
          what="the clip's preview")
    assert _rate(browser, form, "professional", dict(creator_scores, rhythm=3.0)) == "Saved."
    # the same listener changes their mind: still one rating
    browser.refresh()
    form = browser.find_element(By.CSS_SELECTOR, "form.rating")
    assert "rated" in form.find_element(By.CSS_SELECTOR, "h2").text
    assert _rate(browser, form, "professional", dict(creator_scores, rhythm=2.0)) == "Saved."
    # a second listener rates the same clip (its own order may differ; the token is the same)
    other = browsers()
    other.get(server.url + "/listen")
    form = other.find_element(By.CSS_SELECTOR, f'form.rating[data-item="{token}"]')
    assert _rate(other, form, "non-musician", dict(creator_scores, rhythm=5.0)) == "Saved."
    # a rating without a level is refused on the page
    other.get(server.url + "/listen")
    form = other.find_element(By.CSS_SELECTOR, "form.rating")
    other.execute_script("document.querySelectorAll('input[name=level]').forEach(r => r.checked = false)")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert "musical background" in form.find_element(By.CSS_SELECTOR, ".msg").text

    rows = list(csv.DictReader(io.StringIO(_fetch_text(browser, "/ratings.csv"))))
    assert len(rows) == 3
    creator = [r for r in rows if r["role"] == "creator"][0]
    assert (creator["model"], creator["level"], creator["item"].startswith("job:")) == ("tiny", "amateur", True)
    assert {k: float(creator[k]) for k in creator_scores} == creator_scores
    assert {k: creator[f"control_{k}"] for k in controls} == controls
    listeners = sorted((r for r in rows if r["role"] == "listener"), key=lambda r: r["level"])
    model = listeners[0]["model"]
    assert model in ("modelA", "modelB") and listeners[0]["item"] == f"eval:{model}/clip_a.mp4"   # the CSV has all
    assert [(r["model"], r["level"], float(r["rhythm"])) for r in listeners] == \
        [(model, "non-musician", 5.0), (model, "professional", 2.0)]

    browser.get(server.url + "/summary")
    table = browser.find_element(By.CSS_SELECTOR, 'table[data-table="All ratings"]')
    cell = table.find_element(By.CSS_SELECTOR, f'tr[data-model="{model}"] td[data-criterion="rhythm"]')
    # (2.0 + 5.0) / 2, sd = 3 / sqrt 2, interval 3.5 -+ t(0.975, 1) * 1.5 with t = 12.706
    assert cell.text == "3.50 ± 2.12 (n=2) [-15.56, 22.56]"
    cell = table.find_element(By.CSS_SELECTOR, 'tr[data-model="tiny"] td[data-criterion="structure"]')
    assert cell.text == "1.00 (n=1)"
    table = browser.find_element(By.CSS_SELECTOR, 'table[data-table="Level: professional"]')
    cell = table.find_element(By.CSS_SELECTOR, f'tr[data-model="{model}"] td[data-criterion="rhythm"]')
    assert cell.text == "2.00 (n=1)"


@needs_av
@needs_browser
def test_browser_jobs_survive_a_server_restart(server, browser, video):
    """A job interrupted by a killed server runs again when the server comes back."""
    from selenium.webdriver.common.by import By

    msg = _submit_video(browser, server.url, video, tempo=100, instruments_off=(1, 3), songs=3)
    _wait(browser, lambda d: "in the queue" in msg.text or "running" in msg.text, what="upload")
    job_id = _submitted_job(browser)
    _wait(browser, lambda d: len(_job_ids(d)) == 2, what="both jobs' cards")
    assert _job_ids(browser)[0] == job_id                          # newest first
    _wait(browser, lambda d: _job_status(d, job_id) == "running", what="the job to start")
    stage = browser.execute_script(f"return document.querySelector('article.job[data-id=\"{job_id}\"] .stage')"
                                   ".textContent")
    assert stage.startswith(("starting", "analysing video", "composing 3 songs", "rendering: ",
                             "drawing the beats picture")), stage               # the page shows progress
    server.stop(kill=True)
    server.start()
    assert "re-queued 1 job" in server.log()
    browser.get(server.url + "/")
    _wait(browser, lambda d: _job_status(d, job_id) in ("done", "failed"), timeout=150, what="the re-run job")
    card = browser.find_element(By.CSS_SELECTOR, f'article.job[data-id="{job_id}"]')
    assert _job_status(browser, job_id) == "done", card.text
    assert "100 bpm" in card.text
    facts = [f.text for f in card.find_elements(By.CSS_SELECTOR, ".facts")]
    assert len(facts) == 3 and all(f.startswith("100 bpm") for f in facts)    # the fixed tempo was used
    assert len(browser.find_elements(By.CSS_SELECTOR, "article.job")) == 2    # the earlier job is still there
    # a result joins the listening test under this server's model name
    button = card.find_elements(By.CSS_SELECTOR, "button.to-listening")[2]
    button.click()
    _wait(browser, lambda d: button.text == "added to the listening test", what="the clip to be added")
    browser.get(server.url + "/listen")
    assert len(browser.find_elements(By.CSS_SELECTOR, "form.rating")) == 3
    assert "tiny" not in browser.page_source and job_id[:8] not in browser.page_source


@needs_av
@needs_browser
def test_browser_cancel_regenerate_delete_and_progress(server, browser, video):
    from selenium.webdriver.common.by import By

    msg = _submit_video(browser, server.url, video, songs=3)
    _wait(browser, lambda d: "in the queue" in msg.text or "running" in msg.text, what="upload")
    job_id = _submitted_job(browser)
    card = f'article.job[data-id="{job_id}"]'
    _wait(browser, lambda d: "%" in d.execute_script(f"return document.querySelector('{card} .stage').textContent"),
          timeout=120, what="a percentage")
    stage = browser.execute_script(f"return document.querySelector('{card} .stage').textContent")
    assert stage.startswith(("composing 3 songs: ", "rendering: ")), stage
    assert browser.execute_script(f"return document.querySelector('{card} progress.job-progress') !== null")
    browser.find_element(By.CSS_SELECTOR, f"{card} button.job-cancel").click()
    _wait(browser, lambda d: _job_status(d, job_id) == "cancelled", timeout=120, what="the job to stop")
    assert msg.text == "Your job was cancelled."                        # the message follows the job
    n_before = len(_job_ids(browser))
    browser.find_element(By.CSS_SELECTOR, f"{card} button.job-regenerate").click()
    _wait(browser, lambda d: len(_job_ids(d)) == n_before + 1, what="the regenerated job")
    new_id = _job_ids(browser)[0]
    jobs = {j["id"]: j for j in json.loads(_fetch_text(browser, "/api/jobs"))["jobs"]}
    assert jobs[new_id]["options"]["seed"] != jobs[job_id]["options"]["seed"]
    assert {**jobs[new_id]["options"], "seed": 0} == {**jobs[job_id]["options"], "seed": 0}
    browser.find_element(By.CSS_SELECTOR, f"{card} button.job-delete").click()
    _wait(browser, lambda d: job_id not in _job_ids(d), what="the deleted job's card to go")
    assert job_id not in json.loads(_fetch_text(browser, "/api/jobs"))["jobs"].__repr__()
    _wait(browser, lambda d: _job_status(d, new_id) in ("done", "failed"), timeout=150, what="the regenerated job")
    assert _job_status(browser, new_id) == "done"
