"""Listening-test ratings: one SQLite table, its CSV export and the per-model summary.

A rating is one rater's scores for one clip: six criteria, each 0.5 to 5 in steps of 0.5,
with the rater's declared level.  Creators (who made the clip with the soundtrack app) also
say, per control they set, whether the music did what was asked (yes / partly / no).  The
same rater rating the same clip again replaces the earlier rating.  A/B comparisons (two
models' results for the same video) are kept in their own table: per criterion, which model
was preferred, or "same".  The schema is below; the file is created on first use.

The summary gives, per model and criterion, the mean, the standard deviation, n and the 95 %
confidence interval of the mean (Student's t), for all ratings, per role and per level.
"""
from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from typing import Mapping

import numpy as np

from vidscore import cli
from vidscore.webui.db import SqliteStore

LEVELS = ("non-musician", "amateur", "professional")
ROLES = ("listener", "creator")
#: (key, short name, the question the page asks)
CRITERIA = (
    ("rhythm", "Rhythm match", "Does the rhythm of the music follow the motion in the video?"),
    ("emotion", "Emotion match", "Does the mood of the music fit the video?"),
    ("richness", "Richness", "Is the music varied and full rather than thin or repetitive?"),
    ("correctness", "Correctness", "Is it free of wrong-sounding notes, clashes and glitches?"),
    ("structure", "Structure", "Does it have clear phrases and an overall shape?"),
    ("overall", "Overall satisfaction", "How satisfied are you with this music for this video?"),
)
CRITERION_KEYS = tuple(c[0] for c in CRITERIA)
SCORES = tuple(k / 2 for k in range(1, 11))            # 0.5, 1.0, ..., 5.0
CONTROL_KEYS = ("visual_beats", "tempo", "instruments", "emotion")
ANSWERS = ("yes", "partly", "no")
CSV_COLUMNS = ("id", "created", "updated", "rater", "role", "level", "model", "item", *CRITERION_KEYS,
               *(f"control_{k}" for k in CONTROL_KEYS))

_SCORE_CHECK = " AND ".join(f"{c} BETWEEN 0.5 AND 5 AND {c} * 2 = CAST({c} * 2 AS INTEGER)"
                            for c in CRITERION_KEYS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ratings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     TEXT NOT NULL,           -- ISO 8601 UTC, first rating
    updated     TEXT NOT NULL,           -- ISO 8601 UTC, last change
    rater       TEXT NOT NULL,           -- opaque id of the browser session (not its cookie)
    role        TEXT NOT NULL CHECK (role IN ('listener', 'creator')),
    level       TEXT NOT NULL CHECK (level IN ('non-musician', 'amateur', 'professional')),
    item        TEXT NOT NULL,           -- the clip: eval:<model>/<file> or job:<job id>/<song>
    model       TEXT NOT NULL,           -- which model made it
    rhythm      REAL NOT NULL,
    emotion     REAL NOT NULL,
    richness    REAL NOT NULL,
    correctness REAL NOT NULL,
    structure   REAL NOT NULL,
    overall     REAL NOT NULL,
    controls    TEXT,                    -- creators: JSON {{control: yes | partly | no}}
    UNIQUE (rater, role, item),
    CHECK ({_SCORE_CHECK})
);
CREATE TABLE IF NOT EXISTS ratings_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS comparisons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    rater       TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('non-musician', 'amateur', 'professional')),
    item        TEXT NOT NULL,           -- ab:<video file>|<model>|<model>
    model_a     TEXT NOT NULL,           -- the model shown as A to this rater
    model_b     TEXT NOT NULL,
    choices     TEXT NOT NULL,           -- JSON {{criterion: model name or "same"}}
    UNIQUE (rater, item)
);
"""
SCHEMA_VERSION = 2
AB_ANSWERS = ("A", "same", "B")
COMPARISON_COLUMNS = ("id", "created", "updated", "rater", "level", "item", "model_a", "model_b",
                      *(f"preferred_{k}" for k in CRITERION_KEYS))


def stats(values) -> dict:
    """n, mean, standard deviation (n - 1) and the 95 % interval of the mean (Student's t);
    the spread and interval are None below two values."""
    x = np.asarray([float(v) for v in values], float)
    n = len(x)
    out = {"n": n, "mean": float(x.mean()) if n else None, "sd": None, "ci_low": None, "ci_high": None}
    if n >= 2:
        from scipy.stats import t
        sd = float(x.std(ddof=1))
        half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        out.update(sd=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def parse_score(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise cli.UserError(f"give a score for {name} (0.5 to 5)") from None
    if v not in SCORES:
        raise cli.UserError(f"the score for {name} must be 0.5 to 5 in steps of 0.5, got {value!r}")
    return v


def rating_body(data) -> dict:
    """The JSON body of a rating request: an object whose scores and controls are objects too."""
    if not isinstance(data, dict):
        raise cli.UserError("a rating must be a JSON object with role, item, level and scores")
    for key in ("scores", "controls"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise cli.UserError(f"{key} must be a JSON object (name: value)")
    return data


def csv_table(columns, rows) -> str:
    """CSV text (newline-terminated rows) of a header and rows: the ratings' and comparisons' exports."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


class RatingStore(SqliteStore):
    SCHEMA = SCHEMA
    META_TABLE = "ratings_meta"
    SCHEMA_VERSION = SCHEMA_VERSION

    def save(self, *, rater: str, role: str, level: str, item: str, model: str,
             scores: Mapping[str, object], controls: Mapping[str, str] | None = None) -> int:
        """Validate and store (or replace) one rating; returns its id.  Bad input: UserError."""
        if role not in ROLES:
            raise cli.UserError(f"role must be one of {', '.join(ROLES)}")
        if level not in LEVELS:
            raise cli.UserError(f"first say whether you are a {', '.join(LEVELS[:-1])} or {LEVELS[-1]} listener")
        values = [parse_score(scores.get(key), name) for key, name, _ in CRITERIA]
        controls_json = None
        if role == "creator":
            controls = dict(controls or {})
            for key, answer in controls.items():
                if key not in CONTROL_KEYS:
                    raise cli.UserError(f"unknown control {key!r}")
                if answer not in ANSWERS:
                    raise cli.UserError(f"say yes, partly or no for the {key.replace('_', ' ')} control")
            controls_json = json.dumps(controls, sort_keys=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        cols = ", ".join(CRITERION_KEYS)
        marks = ", ".join("?" * len(CRITERION_KEYS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in CRITERION_KEYS)
        with self._connect() as db:
            row = db.execute(
                f"INSERT INTO ratings (created, updated, rater, role, level, item, model, {cols}, controls) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, {marks}, ?) "
                f"ON CONFLICT (rater, role, item) DO UPDATE SET updated = excluded.updated, "
                f"level = excluded.level, model = excluded.model, {updates}, controls = excluded.controls "
                f"RETURNING id",
                (stamp, stamp, rater, role, level, item, model, *values, controls_json)).fetchone()
        return int(row[0])

    def _rows(self, where: str = "", args: tuple = ()) -> list[dict]:
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM ratings {where} ORDER BY id", args).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["controls"] = json.loads(d["controls"]) if d["controls"] else {}
            out.append(d)
        return out

    def all(self) -> list[dict]:
        return self._rows()

    def by_rater(self, rater: str, role: str) -> dict[str, dict]:
        """The rater's ratings in this role, by item."""
        return {r["item"]: r for r in self._rows("WHERE rater = ? AND role = ?", (rater, role))}

    def csv_text(self) -> str:
        """Every rating as CSV (columns: :data:`CSV_COLUMNS`; empty control cells when not asked)."""
        return csv_table(CSV_COLUMNS, ([r["id"], r["created"], r["updated"], r["rater"], r["role"], r["level"],
                                        r["model"], r["item"], *(r[c] for c in CRITERION_KEYS),
                                        *(r["controls"].get(k, "") for k in CONTROL_KEYS)] for r in self.all()))

    def summary(self, role: str | None = None, level: str | None = None) -> list[dict]:
        """Per model and criterion (all roles, or one; all levels, or one), sorted by model:
        model, criterion, n, mean, sd, ci_low, ci_high (see :func:`stats`); ``count`` = n."""
        rows = [r for r in self.all() if (role is None or r["role"] == role) and (level is None or r["level"] == level)]
        out = []
        for model in sorted({r["model"] for r in rows}):
            mine = [r for r in rows if r["model"] == model]
            for c in CRITERION_KEYS:
                st = stats([r[c] for r in mine])
                out.append({"model": model, "criterion": c, **st, "count": st["n"]})
        return out

    def save_comparison(self, *, rater: str, level: str, item: str, model_a: str, model_b: str,
                        answers: Mapping[str, str]) -> int:
        """One rater's A/B preferences (A, same or B per criterion), stored by model name."""
        if level not in LEVELS:
            raise cli.UserError(f"first say whether you are a {', '.join(LEVELS[:-1])} or {LEVELS[-1]} listener")
        choices = {}
        for key, name, _ in CRITERIA:
            answer = answers.get(key)
            if answer not in AB_ANSWERS:
                raise cli.UserError(f"say which is better for {name}: A, B or the same")
            choices[key] = {"A": model_a, "B": model_b}.get(answer, "same")
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._connect() as db:
            row = db.execute(
                "INSERT INTO comparisons (created, updated, rater, level, item, model_a, model_b, choices) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rater, item) DO UPDATE SET updated = excluded.updated, "
                "level = excluded.level, model_a = excluded.model_a, model_b = excluded.model_b, "
                "choices = excluded.choices RETURNING id",
                (stamp, stamp, rater, level, item, model_a, model_b, json.dumps(choices, sort_keys=True))).fetchone()
        return int(row[0])

    def comparisons(self, rater: str | None = None) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM comparisons" + (" WHERE rater = ?" if rater else "") + " ORDER BY id",
                              (rater,) if rater else ()).fetchall()
        return [{**dict(r), "choices": json.loads(r["choices"])} for r in rows]

    def comparison_summary(self) -> list[dict]:
        """Per pair of models (sorted) and criterion: how often each was preferred, ties, n."""
        counts: dict[tuple, dict] = {}
        for r in self.comparisons():
            first, second = sorted((r["model_a"], r["model_b"]))
            for c in CRITERION_KEYS:
                cell = counts.setdefault((first, second, c), {"model_1": first, "model_2": second, "criterion": c,
                                                              "wins_1": 0, "wins_2": 0, "same": 0, "n": 0})
                pick = r["choices"].get(c)
                cell["wins_1" if pick == first else "wins_2" if pick == second else "same"] += 1
                cell["n"] += 1
        return [counts[k] for k in sorted(counts, key=lambda k: (k[0], k[1], CRITERION_KEYS.index(k[2])))]

    def comparisons_csv(self) -> str:
        return csv_table(COMPARISON_COLUMNS, ([r["id"], r["created"], r["updated"], r["rater"], r["level"], r["item"],
                                               r["model_a"], r["model_b"],
                                               *(r["choices"].get(c, "") for c in CRITERION_KEYS)]
                                              for r in self.comparisons()))

    def control_summary(self) -> list[dict]:
        """Creators' answers per model and control: counts of yes, partly and no."""
        counts: dict[tuple[str, str], dict] = {}
        for r in self._rows("WHERE role = 'creator'"):
            for key, answer in r["controls"].items():
                c = counts.setdefault((r["model"], key), {"model": r["model"], "control": key,
                                                          **{a: 0 for a in ANSWERS}, "count": 0})
                c[answer] += 1
                c["count"] += 1
        return [counts[k] for k in sorted(counts, key=lambda k: (k[0], CONTROL_KEYS.index(k[1])))]
