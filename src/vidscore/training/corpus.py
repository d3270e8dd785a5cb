"""Where training music comes from: folder jobs, LPD pianorolls and the music21 corpus -> MIDI.

* :func:`run_jobs` maps a function over files in worker processes with a progress bar;
  a file that fails gives a one-line reason instead of stopping the run
  (:class:`JobReport` counts the reasons for the final summary).
* LPD: :func:`pianoroll_to_midi` turns a pypianoroll ``.npz`` (lpd-5-cleansed) into a
  MIDI whose tracks are named exactly Drums/Piano/Guitar/Bass/Strings.
* music21: :func:`music21_units` lists the tunes and pieces music21 ships and
  :func:`music21_to_midi` converts one to a five-class MIDI (see docs/data.md, "The offline
  corpus", for the part -> instrument rules).
"""
from __future__ import annotations

import collections
import functools
import hashlib
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidscore import cli
from vidscore import constants as D
from vidscore.music.representation import BadMidiError, instrument_class, load_midi


class SkipFile(Exception):
    """A file the job cannot use; ``str(e)`` is the one-line reason (text before ' (' is its kind)."""


# ---------------------------------------------------------------------------------
# parallel folder jobs
# ---------------------------------------------------------------------------------

def default_workers(workers: int | None = None) -> int:
    if workers is None or workers <= 0:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1
    return workers


def _call(func, item):
    try:
        return item, True, func(item)
    except (SkipFile, BadMidiError) as e:
        return item, False, " ".join(str(e).split()) or type(e).__name__
    except Exception as e:  # never let one file stop the run
        msg = " ".join(str(e).split())[:120]
        return item, False, f"unexpected error ({type(e).__name__}: {msg})"


def _worker_ignores_ctrl_c() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops the pool (one 'interrupted'
    line instead of a traceback from every worker), and die quietly on the SIGTERM it stops them
    with (not through :func:`cli.run`'s handler, which they inherit)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_jobs(func, items: list, workers: int | None = None, desc: str = ""):
    """Yield ``(item, ok, value_or_reason)`` for ``func(item)`` over ``items`` (completion order).

    Runs in ``workers`` processes (default: all cores); 1 runs in this process.  ``func``
    must be a module-level function.  A failing item yields ``ok=False`` and a reason.
    """
    items = list(items)
    workers = min(default_workers(workers), max(len(items), 1))
    call = functools.partial(_call, func)
    bar = cli.progress(total=len(items), desc=desc, unit="file")
    try:
        if workers <= 1:
            for item in items:
                yield call(item)
                bar.update(1)
        else:
            chunk = max(1, min(16, len(items) // (workers * 8)))
            with mp.get_context("fork").Pool(workers, initializer=_worker_ignores_ctrl_c) as pool:
                for res in pool.imap_unordered(call, items, chunksize=chunk):
                    yield res
                    bar.update(1)
    finally:
        bar.close()


def reason_kind(reason: str) -> str:
    """The part of a reason that names its kind (before any ' (' detail)."""
    return reason.split(" (", 1)[0].strip()


class JobReport:
    """Counts of good, cached and skipped files, with each skip's reason."""

    def __init__(self, what: str = "files"):
        self.what = what
        self.n_ok = 0
        self.cached = 0
        self.skipped: list[dict] = []

    def ok(self, cached: bool = False) -> None:
        self.n_ok += 1
        self.cached += int(bool(cached))

    def skip(self, item_id, reason: str, was_ok: bool = False) -> None:
        if was_ok:
            self.n_ok -= 1
        self.skipped.append({"id": str(item_id), "reason": reason})

    def reason_counts(self) -> dict[str, int]:
        return dict(collections.Counter(reason_kind(s["reason"]) for s in self.skipped).most_common())

    def reasons_line(self) -> str:
        c = self.reason_counts()
        return "; ".join(f"{n} {k}" for k, n in c.items()) or "nothing skipped"

    def lines(self, examples: int = 2, kinds: int = 15) -> list[str]:
        """Summary: counts, then the most common skip reasons with example ids."""
        out = [f"{self.what}: {self.n_ok} ok ({self.cached} cached), {len(self.skipped)} skipped"]
        by_kind = collections.defaultdict(list)
        for s in self.skipped:
            by_kind[reason_kind(s["reason"])].append(s)
        counts = list(self.reason_counts().items())
        for kind, n in counts[:kinds]:
            ex = ", ".join(s["id"] for s in by_kind[kind][:examples])
            out.append(f"  {n:6d}  {kind}  (e.g. {ex})")
        if len(counts) > kinds:
            rest = sum(n for _, n in counts[kinds:])
            out.append(f"  {rest:6d}  in {len(counts) - kinds} other kinds (all listed in the stats JSON)")
        return out


# ---------------------------------------------------------------------------------
# LPD: pypianoroll .npz -> MIDI
# ---------------------------------------------------------------------------------

def find_pianoroll_files(in_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(relative id without suffix, path)`` of every ``.npz`` under ``in_dir``, sorted."""
    root = Path(in_dir)
    out = [(p.relative_to(root).with_suffix("").as_posix(), p)
           for p in root.rglob("*.npz") if p.is_file() and not p.name.startswith(".")]
    out.sort()
    return out


def _roll_notes(roll: np.ndarray):
    """Notes ``(start, end, pitch, velocity)`` of a (time, 128) pianoroll (a run of non-zero steps = one note)."""
    roll = np.asarray(roll)
    on = roll > 0
    padded = np.zeros((on.shape[0] + 2, on.shape[1]), dtype=np.int8)
    padded[1:-1] = on
    d = np.diff(padded, axis=0)
    st = np.argwhere(d == 1)  # (time, pitch), sorted by time then pitch
    en = np.argwhere(d == -1)
    # pair starts and ends per pitch: both sorted by (pitch, time) line up
    st = st[np.lexsort((st[:, 0], st[:, 1]))]
    en = en[np.lexsort((en[:, 0], en[:, 1]))]
    if roll.dtype == np.bool_ or len(st) == 0:
        vel = np.full(len(st), 80)
    else:
        vel = np.clip(roll[st[:, 0], st[:, 1]], 1, 127).astype(int)
    return st[:, 0], en[:, 0], st[:, 1], vel


def pianoroll_to_midi(path: str | os.PathLike):
    """A ``miditoolkit.MidiFile`` for a pypianoroll ``.npz`` (e.g. lpd-5-cleansed).

    Tracks are mapped to the five classes (by name, else General MIDI program family; see
    :func:`representation.instrument_class`), merged per class and named exactly as the
    class; programs are kept from the pianoroll (Drums on the drum channel).  Resolution
    and first tempo are kept.  When the file has downbeats they must be 4 beats apart
    (else SkipFile: non-4/4); a leading partial bar is padded so downbeats fall on bar
    lines.  Raises SkipFile for unreadable, zero-track or note-less files.
    """
    import miditoolkit
    import pypianoroll
    from miditoolkit.midi.containers import Instrument, Note, TempoChange, TimeSignature

    path = Path(path)
    if path.stat().st_size == 0:
        raise SkipFile("empty file (0 bytes)")
    try:
        mt = pypianoroll.load(path)
    except Exception as e:
        raise SkipFile(f"not a pypianoroll npz ({type(e).__name__}: {' '.join(str(e).split())[:100]})") from None
    if not mt.tracks:
        raise SkipFile("zero tracks")
    res = int(mt.resolution or 0)
    if res <= 0:
        raise SkipFile(f"bad resolution ({res})")
    bar_steps = 4 * res
    shift = 0
    if mt.downbeat is not None and np.asarray(mt.downbeat).any():
        db = np.flatnonzero(np.asarray(mt.downbeat))
        if len(db) >= 2:
            gaps = np.diff(db)
            common = collections.Counter(gaps.tolist()).most_common(1)[0][0]
            if common != bar_steps:
                raise SkipFile(f"non-4/4 (downbeats every {common / res:g} beats)")
        shift = int((bar_steps - db[0] % bar_steps) % bar_steps)
    tempo = 120.0
    if mt.tempo is not None and np.size(mt.tempo) and float(np.asarray(mt.tempo).flat[0]) > 0:
        tempo = float(np.asarray(mt.tempo).flat[0])
    midi = miditoolkit.MidiFile(ticks_per_beat=res)
    midi.tempo_changes = [TempoChange(tempo, 0)]
    midi.time_signature_changes = [TimeSignature(4, 4, 0)]
    by_class: dict[int, Instrument] = {}
    for track in mt.tracks:
        roll = track.pianoroll
        if roll is None or roll.size == 0:
            continue
        start, end, pitch, vel = _roll_notes(roll)
        if len(start) == 0:
            continue
        cls = instrument_class(track.name, track.program, track.is_drum)
        if not cls:        # an effects family, which LPD-5 leaves out
            continue
        name = D.INSTRUMENTS[cls - 1]
        inst = by_class.get(cls)
        if inst is None:
            program = int(track.program) if track.program is not None else D.PROGRAMS[name]
            inst = by_class[cls] = Instrument(program=program, is_drum=(cls == D.DRUMS), name=name)
        inst.notes.extend(Note(int(v), int(p), int(s) + shift, int(e) + shift)
                          for s, e, p, v in zip(start, end, pitch, vel))
    if not by_class:
        raise SkipFile("no notes")
    for cls in sorted(by_class):
        inst = by_class[cls]
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
        midi.instruments.append(inst)
    midi.max_tick = max(n.end for i in midi.instruments for n in i.notes) + 1
    return midi


def convert_pianoroll_job(job: tuple) -> str:
    """Worker: ``(in_path, out_path)``; writes the MIDI atomically unless it exists. Returns 'done' or 'exists'."""
    src, dst = job
    if Path(dst).exists():
        return "exists"
    midi = pianoroll_to_midi(src)
    with cli.atomic_path(dst) as tmp:
        midi.dump(tmp)
    return "done"


# ---------------------------------------------------------------------------------
# music21 corpus -> MIDI
# ---------------------------------------------------------------------------------

CONVERTER_VERSION = 1
FOLK_COLLECTIONS = {"essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth", "miscFolk", "nottingham-dataset",
                    "liliuokalani"}
EXCLUDED_COLLECTIONS = {"demos", "theoryExercises", "leadSheet"}  # exercises and chord-symbol lead sheets
EXCLUDED_FORMATS = {".rntxt"}  # Roman-numeral analyses, not scores


def collection_genre(collection: str) -> str:
    """Genre label of a music21 collection: Folk for the tune books, Classical for the rest."""
    return "Folk" if collection in FOLK_COLLECTIONS else "Classical"


def meter_scale(numerator: int, denominator: int) -> float | None:
    """Factor that maps a meter onto 16-sixteenth bars, or None when it cannot.

    Bars of 4 quarter notes (4/4, 2/2, 8/8) are kept (1.0); bars of 8 quarters counted in
    halves or wholes (4/2, 2/1: Renaissance polyphony) are halved (0.5), as modern
    editions with reduced note values do.  Anything else is unsupported.
    """
    quarters = 4.0 * numerator / denominator
    if quarters == 4.0:
        return 1.0
    if quarters == 8.0 and denominator <= 2:
        return 0.5
    return None


@dataclass(frozen=True)
class Music21Unit:
    uid: str  # "<collection>/<file stem>[_<number>]"
    collection: str
    source_path: str  # relative to the music21 corpus folder
    number: int | None
    meter: str | None  # first time signature from music21's metadata cache


def music21_corpus_root() -> Path:
    import music21.corpus

    return Path(music21.corpus.__file__).parent


def music21_units(collections_: list[str] | None = None, cap: int | None = None):
    """The pieces music21 ships, from its metadata cache (no parsing).

    Returns ``(units, skipped)``: units to convert, and ``(uid, reason)`` for pieces
    excluded up front (exercise collections, analyses, meters without 16-sixteenth bars).
    ``cap`` keeps at most that many units per collection, chosen by a salted hash of their ids
    (deterministic, spread over the collection's files, independent of the train/validation
    split's hash, so about 10 % of any capped selection is validation, in every collection).
    """
    from music21 import corpus

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    units, skipped = [], []
    seen = set()
    entries = list(bundle)
    # a file holding many tunes is listed once per tune and once as a whole: keep the tunes
    numbered = {str(e.sourcePath) for e in entries if e.number not in (None, "")}
    for entry in entries:
        sp = str(entry.sourcePath)
        if entry.number in (None, "") and sp in numbered:
            continue
        coll = sp.split("/", 1)[0]
        if collections_ and coll not in collections_:
            continue
        stem = Path(sp).with_suffix("").as_posix()
        number = entry.number
        try:
            number = int(number) if number not in (None, "") else None
        except (TypeError, ValueError):
            number = None
        uid = stem if number is None else f"{stem}_{number}"
        if uid in seen:
            continue
        seen.add(uid)
        ts = getattr(entry.metadata, "timeSignatureFirst", None)
        ts = str(ts) if ts else None
        if coll in EXCLUDED_COLLECTIONS:
            skipped.append((uid, f"excluded collection ({coll}: exercises or lead sheets)"))
            continue
        if Path(sp).suffix.lower() in EXCLUDED_FORMATS:
            skipped.append((uid, "Roman-numeral analysis (not a score)"))
            continue
        if ts and "/" in ts:
            try:
                num, den = (int(v) for v in ts.split("/"))
                ok = meter_scale(num, den) is not None
            except ValueError:
                ok = False
            if not ok:
                skipped.append((uid, f"meter {ts} (bars are not 16 sixteenths)"))
                continue
        units.append(Music21Unit(uid, coll, sp, number, ts))
    if cap:
        units, over = cap_per_collection(units, cap)
        skipped += over
    units.sort(key=lambda u: u.uid)
    return units, skipped


def cap_per_collection(units: list, cap: int) -> tuple[list, list]:
    """(kept, [(uid, reason)]): at most ``cap`` units (with ``uid`` and ``collection``) per
    collection, chosen by a salted hash of their ids.  Salted: the train/validation split hashes
    the same ids (dataset.assign_split), and taking the lowest hashes of both put every capped
    piece into validation; with the salt about 10 % of any capped selection is validation."""
    by_coll = collections.defaultdict(list)
    for u in units:
        by_coll[u.collection].append(u)
    kept, skipped = [], []
    for coll, us in sorted(by_coll.items()):
        us.sort(key=lambda u: hashlib.sha1(f"cap:{u.uid}".encode()).hexdigest())
        kept += us[:cap]
        skipped += [(u.uid, f"over the per-collection cap (--cap {cap})") for u in us[cap:]]
    return kept, skipped


_ROLE_WORDS = [  # checked in order on the lower-cased part/instrument name
    ("string_low", ("violoncello", "cello", "violone", "contrabass", "double bass", "kontrabass")),
    ("string_high", ("violin", "violino", "viola", "fiddle")),
    ("keyboard", ("piano", "pianoforte", "organ", "organo", "harpsichord", "cembalo", "clavier", "klavier",
                  "keyboard", "continuo")),
    ("guitar", ("guitar", "lute", "liuto", "theorbo")),
    ("voice", ("soprano", "alto", "tenor", "bass", "baritone", "canto", "cantus", "quinto", "sesto", "basso",
               "contratenor", "superius", "voice", "voce", "gesang", "solo")),
]


def part_role(name: str | None, inst=None) -> str | None:
    """'keyboard', 'guitar', 'string_high', 'string_low', 'voice' or None for a score part.

    The part (or instrument) name decides first; music21's instrument class is the fallback
    (many files carry a default Piano instrument on every part, so the class alone misleads).
    """
    names = [n.lower() for n in (name, getattr(inst, "partName", None), getattr(inst, "instrumentName", None)) if n]
    for n in names:
        for role, words in _ROLE_WORDS:
            if any(w in n for w in words):
                return role
    if inst is None:
        return None
    from music21 import instrument as I

    if isinstance(inst, (I.Violoncello, I.Contrabass)):
        return "string_low"
    if isinstance(inst, (I.Violin, I.Viola)):
        return "string_high"
    if isinstance(inst, I.Guitar):
        return "guitar"
    if isinstance(inst, I.Vocalist):
        return "voice"
    if isinstance(inst, I.KeyboardInstrument) and not names:
        return "keyboard"
    return None


def assign_parts(parts: list[dict]) -> list[int]:
    """Instrument class per part.  Each part is ``{"mean_pitch", "keyboard", "strings", "guitar"}``.

    Rules: keyboard staves -> Piano; guitar -> Guitar; a lone part -> Piano.  Among the
    other parts, ordered by mean pitch: the lowest -> Bass; the highest -> Piano (Strings
    when it is a violin/viola or when a keyboard carries the harmony); violins/violas ->
    Strings; remaining inner voices alternate Strings, Guitar from the top.
    """
    classes = [0] * len(parts)
    rest = []
    for i, p in enumerate(parts):
        if p.get("keyboard"):
            classes[i] = D.PIANO
        elif p.get("guitar"):
            classes[i] = D.GUITAR
        else:
            rest.append(i)
    has_keyboard = any(p.get("keyboard") for p in parts)
    if len(parts) == 1 and rest:
        classes[rest[0]] = D.PIANO
        return classes
    order = sorted(rest, key=lambda i: -parts[i]["mean_pitch"])  # highest first
    if not order:
        return classes
    if len(order) == 1:
        i = order[0]
        classes[i] = D.STRINGS if (has_keyboard or parts[i].get("strings")) else D.PIANO
        return classes
    classes[order[-1]] = D.BASS
    top = order[0]
    classes[top] = D.STRINGS if (has_keyboard or parts[top].get("strings")) else D.PIANO
    inner = order[1:-1]
    for k, i in enumerate(inner):
        if parts[i].get("strings"):
            classes[i] = D.STRINGS
        else:
            classes[i] = D.STRINGS if k % 2 == 0 else D.GUITAR
    return classes


def _parse_music21(unit: Music21Unit):
    from music21 import converter

    path = music21_corpus_root() / unit.source_path
    kw = {"forceSource": True, "storePickle": False}
    if unit.number is not None:
        kw["number"] = unit.number
    s = converter.parse(str(path), **kw)
    if s.__class__.__name__ == "Opus":
        scores = list(s.scores)
        if not scores:
            raise SkipFile("empty opus")
        s = scores[0]
    return s


def _part_notes(parts, shift: float, scale: float) -> tuple[list, list]:
    """Per part with notes: its notes ``(start, length, pitch)`` in quarters after the pickup
    ``shift`` and the meter ``scale``, and what :func:`assign_parts` needs to know of it."""
    from music21 import harmony
    part_notes, part_info = [], []
    for part in parts:
        inst = part.getInstrument(returnDefault=False)
        try:
            stripped = part.stripTies(inPlace=True) or part  # in place: a copy costs as much as parsing
        except Exception:
            stripped = part
        notes = []
        for el in stripped.flatten().notes:
            if isinstance(el, harmony.Harmony):
                continue
            ql = float(el.quarterLength)
            if ql <= 0:
                continue  # grace notes
            start = (float(el.offset) + shift) * scale
            pitches = [p.midi for p in getattr(el, "pitches", ()) if p is not None]
            for pm in pitches:
                if 0 <= pm <= 127:
                    notes.append((start, ql * scale, int(pm)))
        if not notes:
            continue
        arr = np.array(notes, dtype=np.float64)
        part_notes.append(arr)
        role = part_role(part.partName, inst)
        part_info.append({
            "name": part.partName or "",
            "mean_pitch": float(arr[:, 2].mean()),
            "keyboard": role == "keyboard",
            "strings": role in ("string_high", "string_low"),
            "guitar": role == "guitar",
        })
    return part_notes, part_info


def music21_to_midi(unit: Music21Unit, ticks_per_beat: int = 480):
    """Parse one music21 piece and return ``(miditoolkit.MidiFile, info)``; SkipFile if unusable.

    Meters: bars of 4 quarters kept, 4/2 and 2/1 halved (see :func:`meter_scale`), others
    and meter changes skipped.  A pickup is padded so bar lines fall on multiples of 16
    sixteenths.  Ties are merged, grace notes and chord symbols dropped, repeats not
    expanded.  Parts are mapped by :func:`assign_parts`.
    """
    import miditoolkit
    from music21 import meter
    from miditoolkit.midi.containers import Instrument, Note, TempoChange, TimeSignature

    try:
        score = _parse_music21(unit)
    except SkipFile:
        raise
    except Exception as e:
        raise SkipFile(f"music21 cannot parse ({type(e).__name__}: {' '.join(str(e).split())[:100]})") from None
    sigs = list(score.recurse().getElementsByClass(meter.TimeSignature))
    if not sigs:
        raise SkipFile("no time signature")
    scales = {meter_scale(ts.numerator, ts.denominator) for ts in sigs}
    names = sorted({ts.ratioString for ts in sigs})
    if len(names) > 1 and (None in scales or len(scales) > 1):
        raise SkipFile(f"meter changes ({', '.join(names)})")
    if None in scales:
        raise SkipFile(f"meter {names[0]} (bars are not 16 sixteenths)")
    scale = scales.pop()
    parts = list(score.parts) or [score]
    bar_ql = 4.0 / scale
    # pickup: pad so that the first full bar starts on a bar line
    shift = 0.0
    measures = parts[0].getElementsByClass("Measure")
    if len(measures):
        m0 = measures[0]
        dur0 = float(m0.duration.quarterLength)
        if float(m0.paddingLeft or 0) > 0 and 0 < dur0 < bar_ql:
            shift = bar_ql - dur0
    part_notes, part_info = _part_notes(parts, shift, scale)
    if not part_notes:
        raise SkipFile("no notes")
    classes = assign_parts(part_info)
    tempo = 120.0
    try:
        mm = next(iter(score.recurse().getElementsByClass("MetronomeMark")), None)
        if mm is not None and mm.getQuarterBPM():
            tempo = float(mm.getQuarterBPM()) * scale
    except Exception:
        pass
    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tempo_changes = [TempoChange(min(max(tempo, 30.0), 300.0), 0)]
    midi.time_signature_changes = [TimeSignature(4, 4, 0)]
    tracks: dict[int, Instrument] = {}
    for arr, cls in zip(part_notes, classes):
        name = D.INSTRUMENTS[cls - 1]
        inst = tracks.setdefault(cls, Instrument(program=D.PROGRAMS[name], is_drum=False, name=name))
        for start, dur, pm in arr:
            s = int(round(start * ticks_per_beat))
            e = max(s + 1, int(round((start + dur) * ticks_per_beat)))
            inst.notes.append(Note(80, int(pm), s, e))
    for cls in sorted(tracks):
        tracks[cls].notes.sort(key=lambda n: (n.start, n.pitch))
        midi.instruments.append(tracks[cls])
    midi.max_tick = max(n.end for i in midi.instruments for n in i.notes) + 1
    info = {"uid": unit.uid, "meter": names[0], "scale": scale, "pickup_ql": shift,
            "parts": [{"name": p["name"], "class": D.INSTRUMENTS[c - 1]} for p, c in zip(part_info, classes)]}
    return midi, info


def convert_music21_job(job: tuple) -> dict:
    """Worker: ``(unit, out_path)``; writes the MIDI atomically (reuses an existing one)."""
    unit, dst = job
    if Path(dst).exists():
        return {"uid": unit.uid, "cached": True}
    midi, info = music21_to_midi(unit)
    with cli.atomic_path(dst) as tmp:
        midi.dump(tmp)
    info["cached"] = False
    return info


# ---------------------------------------------------------------------------------
# whole folders
# ---------------------------------------------------------------------------------

def convert_pianoroll_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike,
                             workers: int | None = None) -> JobReport:
    """Every ``.npz`` under ``in_dir`` -> ``out_dir/<same relative path>.mid`` (resumable: existing
    outputs are kept).  Returns the report (``cached`` counts outputs that already existed)."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = find_pianoroll_files(in_dir)
    report = JobReport("pianoroll -> MIDI")
    jobs = [(str(p), str(out_dir / f"{rel}.mid")) for rel, p in files]
    rel_of = {str(p): rel for rel, p in files}
    for job, ok, value in run_jobs(convert_pianoroll_job, jobs, workers=workers, desc="pianoroll->midi"):
        if ok:
            report.ok(cached=(value == "exists"))
        else:
            report.skip(rel_of[job[0]], value)
    report.skipped.sort(key=lambda s: s["id"])
    return report


def _load_manifest(path: Path) -> dict:
    import json

    try:
        m = json.loads(path.read_text())
        if m.get("converter_version") == CONVERTER_VERSION:
            return m
    except (OSError, ValueError):
        pass
    return {"converter_version": CONVERTER_VERSION, "units": {}}


def _save_manifest(path: Path, manifest: dict) -> None:
    import json

    cli.write_text_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def build_music21_midi(out_dir: str | os.PathLike, cap: int | None = 1000, workers: int | None = None,
                       collections_: list[str] | None = None):
    """Convert the music21 corpus to MIDI under ``out_dir`` (cached: a rerun reuses files and reasons).

    Returns ``(files, genre_map, report)``: ``[(uid, midi_path)]`` of the converted pieces of
    this selection, ``{uid: genre id}``, and the JobReport (pieces excluded up front are
    listed as skipped with their reason).  Also writes ``out_dir/manifest.json`` (per piece:
    status, reason, genre, part mapping) and ``out_dir/genres.tsv``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units, pre_skipped = music21_units(collections_, cap)
    report = JobReport("music21 -> MIDI")
    for uid, reason in pre_skipped:
        report.skip(uid, reason)
    mpath = out_dir / "manifest.json"
    manifest = _load_manifest(mpath)
    known = manifest["units"]
    jobs = []
    files = []
    for u in units:
        dst = out_dir / f"{u.uid}.mid"
        rec = known.get(u.uid)
        if rec and rec.get("status") == "skip":
            report.skip(u.uid, rec["reason"])
        elif rec and rec.get("status") == "ok" and dst.exists():
            report.ok(cached=True)
            files.append((u.uid, dst))
        else:
            jobs.append((u, str(dst)))
    done = 0
    try:
        for job, ok, value in run_jobs(convert_music21_job, jobs, workers=workers, desc="music21->midi"):
            u = job[0]
            if ok:
                report.ok(cached=value.get("cached", False))
                files.append((u.uid, Path(job[1])))
                known[u.uid] = {"status": "ok", "genre": collection_genre(u.collection),
                                **({"parts": value["parts"], "meter": value["meter"]} if "parts" in value else {})}
            else:
                report.skip(u.uid, value)
                if not value.startswith("unexpected error"):
                    known[u.uid] = {"status": "skip", "reason": value}
            done += 1
            if done % 500 == 0:
                _save_manifest(mpath, manifest)
    finally:
        _save_manifest(mpath, manifest)
    files.sort()
    genre_map = {uid: D.GENRE_ID[collection_genre(uid.split("/", 1)[0])] for uid, _ in files}
    cli.write_text_atomic(out_dir / "genres.tsv",
                          "".join(f"{uid}\t{D.GENRES[g]}\n" for uid, g in sorted(genre_map.items())))
    report.skipped.sort(key=lambda s: s["id"])
    return files, genre_map, report


# ---------------------------------------------------------------------------------
# General MIDI songs with drums from Debian packages
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MidiSource:
    """A folder of General MIDI files that a Debian package installs (see docs/data.md, "Drummed songs")."""
    name: str          # the --source name, also the song ids' prefix ("openmsx/<file stem>")
    package: str       # apt-get install -y <package>
    folder: str        # where the package puts its .mid files
    genre: str         # genre label of every song (a name in dictionary_mix.GENRES)
    licence: str


DEBIAN_MIDI_SOURCES = {
    s.name: s for s in (
        MidiSource("openmsx", "openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx", "Pop", "GPL-2.0"),
        MidiSource("blupi", "planetblupi-music-midi", "/usr/share/planetblupi/music", "Pop", "GPL-3.0-or-later"),
    )
}


def debian_midi_files(name: str, folder: str | os.PathLike | None = None):
    """``(files, genre_map)`` of a Debian MIDI source: ``[(id, path)]`` with ids
    ``<name>/<relative path without suffix>`` and every id mapped to the source's genre id.

    ``folder`` overrides where the files are (tests).  Raises SkipFile with the install
    command when the folder is missing or holds no MIDI file.
    """
    src = DEBIAN_MIDI_SOURCES[name]
    root = Path(folder or src.folder)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file()) \
        if root.is_dir() else []
    if not paths:
        raise SkipFile(f"no MIDI files in {root} (install them with: sudo apt-get install -y {src.package})")
    files = [(f"{name}/{p.relative_to(root).with_suffix('').as_posix()}", p) for p in paths]
    gid = D.genre_id(src.genre)
    return files, {sid: gid for sid, _ in files}


# ----------------------------------------------------------------------------- drums laid over pitched music

OVERLAY_LOOP_BARS = 4          # a drum loop: this many 4/4 bars of a drummed song's drum part
OVERLAY_MIN_ONSETS = 8         # ... with at least this many drum onsets
OVERLAY_GENRE = "Pop"          # the drummed genre the overlays are labelled with


def drum_loops(files: list[tuple[str, Path]], bars: int = OVERLAY_LOOP_BARS,
               min_onsets: int = OVERLAY_MIN_ONSETS) -> list[tuple[str, list[tuple[int, int, int, int]]]]:
    """The drum loops of General MIDI songs: ``[(song id, [(onset, pitch, duration, velocity)])]``
    with times in 16th notes from the loop's start, one loop per ``bars``-bar window (16
    sixteenths a bar) of a song's channel-10 part that has at least ``min_onsets`` distinct
    onsets.  Files that cannot be read are skipped."""
    span = 16 * bars
    out = []
    for sid, path in files:
        try:
            midi = load_midi(path)
        except BadMidiError:        # a broken file has no loops
            continue
        sixteenth = midi.ticks_per_beat / 4
        notes = [(int(round(n.start / sixteenth)), n.pitch, max(1, int(round((n.end - n.start) / sixteenth))),
                  n.velocity) for i in midi.instruments if i.is_drum for n in i.notes]
        if not notes:
            continue
        last = max(n[0] for n in notes)
        for lo in range(0, last + 1, span):
            loop = sorted((o - lo, p, min(d, span), v) for o, p, d, v in notes if lo <= o < lo + span)
            if len({n[0] for n in loop}) >= min_onsets:
                out.append((sid, loop))
    return out


def overlay_drums(pitched: Path, loop: list[tuple[int, int, int, int]], out: Path,
                  bars: int = OVERLAY_LOOP_BARS) -> Path:
    """Write ``out``: the MIDI file ``pitched`` with a drum part (channel 10) that repeats
    ``loop`` (:func:`drum_loops`) from its first bar to its last note.  The pitched parts are
    kept as they are.  Atomic; ``pitched`` is never changed."""
    import miditoolkit
    midi = load_midi(pitched)
    sixteenth = midi.ticks_per_beat / 4
    end = max((n.end for i in midi.instruments for n in i.notes), default=0)
    length = int(np.ceil(end / sixteenth))
    span = 16 * bars
    drums = miditoolkit.Instrument(program=0, is_drum=True, name="Drums")
    for start in range(0, length, span):
        for o, p, d, v in loop:
            if start + o < length:
                drums.notes.append(miditoolkit.Note(velocity=int(v), pitch=int(p),
                                                    start=int(round((start + o) * sixteenth)),
                                                    end=int(round((start + o + d) * sixteenth))))
    midi.instruments.append(drums)
    with cli.atomic_path(out) as tmp:
        midi.dump(str(tmp))
    return out


def build_overlays(pitched: list[tuple[str, Path]], drummed: list[tuple[str, Path]], out_dir: str | os.PathLike,
                   n: int, seed: int = 0) -> list[tuple[str, Path]]:
    """Up to ``n`` MIDI files under ``out_dir``, each a piece of ``pitched`` (chosen by a seeded
    hash of its id) with a drum loop of ``drummed`` (chosen the same way) laid under it:
    ``[(overlay/<piece id>, path)]``.  Files already there are reused (the choice depends only
    on the ids and ``seed``).  Why: the drummed songs' drums always sit among other drums, so
    a model learns their sounds from the drum context; laid under the pitched corpus, the same
    loops teach it that a Drums note is a drum sound whatever is around it."""
    loops = drum_loops(drummed)
    if not loops or not pitched:
        return []
    def rank(sid: str) -> str:
        return hashlib.sha1(f"{seed}:{sid}".encode()).hexdigest()
    chosen = sorted(pitched, key=lambda f: rank(f[0]))[:n]
    out_dir = Path(out_dir)
    made = []
    for sid, path in cli.progress(chosen, desc="drum overlays", unit="piece"):
        out = out_dir / f"{sid}.mid"
        if not out.is_file():
            loop = loops[int(rank("loop:" + sid), 16) % len(loops)][1]
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                overlay_drums(Path(path), loop, out)
            except Exception:  # noqa: BLE001 - an unreadable piece is left out
                continue
        made.append((f"overlay/{sid}", out))
    return made
