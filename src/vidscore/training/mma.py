"""Running MMA (Musical MIDI Accompaniment) and arranging what it renders: the ``mma`` source's
engine (the batch is :mod:`vidscore.training.mma_source`, the charts :mod:`vidscore.training.mma_chart`).

MMA (Debian package ``mma``, GPL-2+) is a Python program; it runs as a subprocess, with this
Python, from the checked package tree that :mod:`vidscore.training.debian` extracts under
``.cache/debian/mma/`` (:func:`prepare`: its ``mma`` script copied beside its ``MMA/`` modules, its
groove index built once with ``mma -G``).  Its code is never imported.  :func:`library_grooves`
asks MMA what a groove library file holds, :func:`render` turns a chart into MIDI and
:func:`arrange` maps MMA's tracks to the five instrument classes and adds the melody as a lead
track.  See docs/corpus_mma.md.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vidscore import cli, paths
from vidscore import constants as D
from vidscore.training import corpus, debian
from vidscore.training import mma_chart as C
from vidscore.music.representation import instrument_class, load_midi, program_class

PIN = debian.Pin("mma", "21.09-1", deb_sha256="ee2fa4c2d029adc0750f7194ad52de4a75dafa9de0e4ee02962f807f50083acf",
                 files={"usr/bin/mma": "e6705af56bd39bf763e3294cacfba6d78a155993018ca0e19a315332fed510d3",
                        "usr/share/mma/MMA/main.py": "c939576fdd7f31732cf28c32857789dea318302cacdffaa54bb0f38f5161d2c4",
                        "usr/share/mma/lib/stdlib/8beat.mma":
                            "dbcb927e90969786c7b44d22f298bb5503da8e10a3afeb4e74052bae7e847620"})
ARRANGER_VERSION = 1
TICKS_PER_BEAT = 960        # a multiple of MMA's 192 and the melodies' 480: every tick stays exact
RENDER_TIMEOUT = 120


def cache_root() -> Path:
    return paths.CACHE / "mma"


# ---------------------------------------------------------------------------------
# running MMA
# ---------------------------------------------------------------------------------

def _run(home: Path, args: list[str], cwd: str | Path, timeout: float = RENDER_TIMEOUT):
    """``mma <args>`` with this Python, an empty init file (no user's ~/.mmarc) and a fixed hash seed."""
    cmd = [sys.executable, str(home / "mma"), "-i", str(home / "vidscore.mmarc"), *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise corpus.SkipFile(f"mma timed out (over {timeout:g} s)") from None


def _error_line(run) -> str:
    lines = [ln.strip() for ln in (run.stdout + "\n" + run.stderr).splitlines() if ln.strip()]
    err = next((i for i, ln in enumerate(lines) if ln.startswith("Error")), None)
    text = " ".join(lines[err:err + 2]) if err is not None else (lines[-1] if lines else f"exit {run.returncode}")
    return " ".join(text.split())[:160]


def prepare(root: Path) -> Path:
    """MMA's home in an extracted package tree ``root``, made once: its ``mma`` script copied beside
    ``MMA/``, an empty plugins folder and init file, its modules compiled (each run starts a third
    faster where Python may not write bytecode) and its groove index built (``mma -G``)."""
    home = root / "usr/share/mma"
    ready = home / ".vidscore-ready"
    if not ready.is_file():
        shutil.copy2(root / "usr/bin/mma", home / "mma")
        (home / "plugins").mkdir(exist_ok=True)
        (home / "vidscore.mmarc").write_text("", encoding="utf-8")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(home / "MMA")], capture_output=True)
        run = _run(home, ["-G"], cwd=home, timeout=900)
        if run.returncode:
            raise cli.UserError(f"mma -G (building MMA's groove index) failed: {_error_line(run)}")
        ready.write_text(PIN.version + "\n", encoding="utf-8")
    return home


def fetch() -> Path:
    """MMA's home, fetched and checked (:func:`debian.fetch`) and prepared (:func:`prepare`)."""
    return prepare(debian.fetch(PIN))


_DEFGROOVE = re.compile(r"^\s*defgroove\s+(\S+)", re.I | re.M)
PROBE_BARS = 4


def library_grooves(home: Path, library: str) -> list[dict]:
    """The grooves a library file defines, as MMA plays them: ``[{"groove", "size", "time", "drums"}]``
    (its sequence length in bars, beats per bar, and whether its first bars sound any drum).  One
    MMA run renders every groove for ``PROBE_BARS`` bars of C and prints its SeqSize and Time; the
    result is cached under ``.cache/mma/grooves/`` by the file's sha256."""
    src = home / "lib" / f"{library}.mma"
    digest = debian.sha256_file(src)[:16]
    cached = cache_root() / "grooves" / f"{library.replace('/', '__')}-{digest}-{ARRANGER_VERSION}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    names = list(dict.fromkeys(_DEFGROOVE.findall(src.read_text(encoding="latin-1"))))
    chart = [f"Use {library}"]
    for name in names:
        chart += [f"Groove {name}", f"Print VIDSCORE {name} $_SeqSize $_Time"] + ["C"] * PROBE_BARS
    midi = render(home, "\n".join(chart) + "\n", capture="VIDSCORE ")
    printed = {ln.split()[1]: ln.split()[2:4] for ln in midi.printed}
    span = PROBE_BARS * 4 * midi.ticks_per_beat
    drummed = {n.start // span for i in midi.instruments if i.is_drum for n in i.notes}
    grooves = [{"groove": name, "size": int(printed[name][0]), "time": int(float(printed[name][1])),
                "drums": k in drummed} for k, name in enumerate(names)]
    cli.write_text_atomic(cached, json.dumps(grooves, indent=0) + "\n")
    return grooves


def _grooves_job(job: tuple) -> list[dict]:
    return library_grooves(*job)


def load_styles(home: Path, families=None, workers: int | None = None) -> dict[str, list[C.Style]]:
    """``{family: [Style]}`` of ``families`` (default all), the library files read in a worker pool
    (once: cached); files without a drummed 4/4 groove are left out."""
    libs = sorted({lib for name in families or C.FAMILIES for lib in C.FAMILIES[name].libraries})
    grooves = {}
    for (_, lib), ok, value in corpus.run_jobs(_grooves_job, [(home, lib) for lib in libs], workers=workers,
                                               desc="mma grooves"):
        if not ok:
            raise cli.UserError(f"MMA cannot play the grooves of its library file {lib}: {value}")
        grooves[lib] = value
    out = {}
    for name in families or C.FAMILIES:
        styles = [C.style_from_grooves(lib, grooves[lib]) for lib in C.FAMILIES[name].libraries]
        if any(styles):
            out[name] = [s for s in styles if s]
    return out


def render(home: Path, chart: str, capture: str | None = None):
    """The ``miditoolkit.MidiFile`` MMA makes of ``chart``; SkipFile with MMA's error line if it fails.
    With ``capture``, the lines MMA prints that start with it are kept as ``midi.printed``."""
    with tempfile.TemporaryDirectory(prefix="vidscore-mma-") as tmp:
        Path(tmp, "chart.mma").write_text(chart, encoding="utf-8")
        run = _run(home, ["-w", "chart.mma", "-f", "chart.mid"], cwd=tmp)
        out = Path(tmp, "chart.mid")
        if run.returncode or not out.is_file():
            raise corpus.SkipFile(f"mma failed ({_error_line(run)})")
        midi = load_midi(out)
    if capture:
        midi.printed = [ln for ln in run.stdout.splitlines() if ln.startswith(capture)]
    return midi


# ---------------------------------------------------------------------------------
# the song: MMA's tracks in five classes, and the melody
# ---------------------------------------------------------------------------------

def melody_track(midi):
    """The melody of a converted music21 piece: its highest pitched (by mean pitch) track with notes."""
    tracks = [i for i in midi.instruments if i.notes and not i.is_drum]
    if not tracks:
        raise corpus.SkipFile("no melody notes")
    return max(tracks, key=lambda i: sum(n.pitch for n in i.notes) / len(i.notes))


def arrange(rendered, melody, melody_tpb: int, n_intro: int, lead: int):
    """A MIDI file of MMA's ``rendered`` tracks merged per instrument class (the program -> class
    table, ``representation.instrument_class``; channel-10 tracks are Drums, the effects families
    are left out) and named by their class, plus ``melody`` (a track of a file at ``melody_tpb``) as
    a lead on GM program ``lead``, its notes unchanged but for starting after ``n_intro`` bars."""
    import miditoolkit
    from miditoolkit.midi.containers import Instrument, Note, TempoChange, TimeSignature

    out = miditoolkit.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    f = TICKS_PER_BEAT / rendered.ticks_per_beat
    out.tempo_changes = [TempoChange(t.tempo, round(t.time * f)) for t in rendered.tempo_changes]
    out.time_signature_changes = [TimeSignature(4, 4, 0)]
    by_class: dict[int, Instrument] = {}
    for inst in rendered.instruments:
        cls = instrument_class(None, inst.program, inst.is_drum)
        if not cls or not inst.notes:
            continue
        track = by_class.setdefault(cls, Instrument(program=0 if inst.is_drum else inst.program,
                                                    is_drum=cls == D.DRUMS, name=D.INSTRUMENTS[cls - 1]))
        track.notes += [Note(n.velocity, n.pitch, round(n.start * f), round(n.end * f)) for n in inst.notes]
    for cls in sorted(by_class):
        by_class[cls].notes.sort(key=lambda n: (n.start, n.pitch))
        out.instruments.append(by_class[cls])
    g, shift = TICKS_PER_BEAT / melody_tpb, n_intro * 4 * TICKS_PER_BEAT
    lead_track = Instrument(program=lead, is_drum=False, name=D.INSTRUMENTS[program_class(lead) - 1])
    lead_track.notes = [Note(n.velocity, n.pitch, round(n.start * g) + shift, round(n.end * g) + shift)
                        for n in melody.notes]
    out.instruments.append(lead_track)
    out.max_tick = max(n.end for i in out.instruments for n in i.notes) + 1
    return out
