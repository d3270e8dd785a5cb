"""Stems: one WAV per instrument class beside the mix, summing to it (docs/stems_and_audio_beats.md).

    from vidscore import stems
    paths = stems.render_with_stems("song_0.mid", "song_0.wav")   # song_0_stems/song_0_Drums.wav, ...

The MIDI's tracks are grouped by instrument class (:func:`representation.instrument_class`:
Drums, Piano, Guitar, Bass, Strings; tracks of no class are the stem "Other").  Each group is
played alone by FluidSynth (:func:`rendering.render_wav`, in 32-bit float, two processes at a
time, each loading only the samples it plays) with an end marker at the end of the song's file,
so that every stem is played to the song's end.  FluidSynth is not
exactly additive (two instruments played together differ from the sum of each played alone by
up to about 1e-3 of full scale for a few ms where notes start, as its voices are reused), so
the mix is not rendered on its own: it is the sum of the stems.  All are padded with silence
to the longest (FluidSynth renders each until its voices are silent) and quantised to 16 bits
with one shared gain: 1, or lower where the mix or a stem would pass full scale.  Each stem is
rounded to 16 bits and the mix is the sum of those 16-bit samples, so the stems add up to the
mix exactly, sample for sample.  Every file is written atomically; a stem file of a class the
song no longer has is removed from the stems folder.
"""
from __future__ import annotations

import contextlib
import copy
import tempfile
import wave
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vidscore import cli, rendering
from vidscore import constants as D
from vidscore.music import representation as R

OTHER = "Other"                  # tracks of no instrument class
FULL_SCALE = 32767
_BLOCK = 1 << 18                 # samples quantised at once
RENDER_WORKERS = 2               # stems rendered at once (each FluidSynth process uses one core)


def stems_folder(wav_path: str | Path) -> Path:
    """``song_0.wav`` -> ``song_0_stems/``."""
    wav_path = Path(wav_path)
    return wav_path.with_name(f"{wav_path.stem}_stems")


def stem_path(wav_path: str | Path, name: str) -> Path:
    """``song_0.wav``, ``Drums`` -> ``song_0_stems/song_0_Drums.wav``."""
    return stems_folder(wav_path) / f"{Path(wav_path).stem}_{name}.wav"


def possible_paths(wav_path: str | Path) -> list[Path]:
    """Every stem file a song's mix may get (for the output checks made before a run)."""
    return [stem_path(wav_path, name) for name in (*D.INSTRUMENTS, OTHER)]


def render_song(midi_path: str | Path, wav_path: str | Path, with_stems: bool = False) -> list[str]:
    """Render a song: ``[mix]`` (FluidSynth's own 16-bit render), or with ``with_stems``
    ``[mix, stem, ...]`` (:func:`render_with_stems`)."""
    if with_stems:
        return [str(wav_path), *render_with_stems(midi_path, wav_path)]
    return [rendering.render_wav(midi_path, wav_path)]


def split_by_class(midi) -> dict:
    """{stem name: MidiFile holding only that class's tracks}, in class order (Drums .. Strings,
    then Other); each keeps the tempo and meter and ends at the whole song's last tick."""
    from miditoolkit.midi.containers import Marker

    midi = R.load_midi(midi)
    groups: dict[int, list] = {}
    for inst in midi.instruments:
        if inst.notes:
            groups.setdefault(R.instrument_class(inst.name, inst.program, inst.is_drum), []).append(inst)
    end = max([n.end for inst in midi.instruments for n in inst.notes] + [midi.max_tick - 1, 0])
    out = {}
    for cls in sorted(groups, key=lambda c: (c == 0, c)):
        part = copy.copy(midi)
        part.instruments = groups[cls]
        part.markers = [*midi.markers, Marker("end of song", end)]
        out[D.INSTRUMENTS[cls - 1] if cls else OTHER] = part
    return out


def shared_gain(peak: float, n_stems: int) -> float:
    """The one gain of the mix and its stems: 1, or lower so that ``peak`` (the largest sample of
    the mix or of a stem, full scale 1) stays below full scale by the rounding of ``n_stems``."""
    room = (FULL_SCALE - n_stems) / FULL_SCALE
    return 1.0 if peak <= room else room / peak


def _peak(parts: list[np.ndarray], length: int) -> float:
    peak = 0.0
    for a in range(0, length, _BLOCK):
        blocks = [_block(p, a) for p in parts]
        peak = max(peak, float(np.abs(sum(blocks)).max()), *(float(np.abs(b).max()) for b in blocks))
    return peak


def _block(part: np.ndarray, a: int) -> np.ndarray:
    """Samples a .. a + _BLOCK of a stem as float64, silence past its end."""
    out = np.zeros((_BLOCK, 2))
    chunk = np.asarray(part[a:a + _BLOCK], dtype=np.float64).reshape(-1, 2)
    out[:len(chunk)] = chunk
    return out


def _open_wav(path: str, rate: int):
    w = wave.open(path, "wb")
    w.setnchannels(2)
    w.setsampwidth(2)
    w.setframerate(rate)
    return w


def _write(parts: dict, rate: int, length: int, gain: float, mix_path: str, stem_paths: dict) -> None:
    with contextlib.ExitStack() as stack:
        writers = {name: stack.enter_context(contextlib.closing(_open_wav(tmp, rate))) for name, tmp in
                   [(None, mix_path), *stem_paths.items()]}
        for a in range(0, length, _BLOCK):
            n = min(_BLOCK, length - a)
            mix = np.zeros((n, 2), np.int64)
            for name, part in parts.items():
                q = np.round(_block(part, a)[:n] * (FULL_SCALE * gain)).astype(np.int64)
                mix += q
                writers[name].writeframes(q.astype("<i2").tobytes())
            writers[None].writeframes(mix.astype("<i2").tobytes())   # fits: shared_gain leaves the room


def render_with_stems(midi_path: str | Path, wav_path: str | Path, sample_rate: int = rendering.SAMPLE_RATE,
                      gain: float = 0.6) -> list[str]:
    """Write ``wav_path`` (the mix) and one stem per instrument class of ``midi_path`` in
    :func:`stems_folder`; returns the stems' paths.  ``gain``: FluidSynth's, as for the mix alone."""
    wav_path = Path(wav_path)
    groups = split_by_class(midi_path)
    if not groups:
        raise cli.UserError(f"{cli.printable(midi_path)} has no notes to render as stems")
    folder = stems_folder(wav_path)
    with tempfile.TemporaryDirectory(prefix=".stems-", dir=wav_path.parent) as tmp:
        def render(name: str) -> Path:
            mid, raw = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
            groups[name].dump(str(mid))
            rendering.render_wav(mid, raw, sample_rate=sample_rate, gain=gain, sample_format="float",
                                 load_used_samples=True)
            return raw
        with ThreadPoolExecutor(max_workers=RENDER_WORKERS) as pool:   # FluidSynth processes, two at a time
            raws = dict(zip(groups, pool.map(render, groups)))
        parts = {}
        for name, raw in raws.items():
            parts[name], rate = rendering.read_wav(raw)
        length = max(len(p) for p in parts.values())
        level = shared_gain(_peak(list(parts.values()), length), len(parts))
        paths = {name: stem_path(wav_path, name) for name in parts}
        with contextlib.ExitStack() as stack:
            mix_tmp = stack.enter_context(cli.atomic_path(wav_path))
            tmps = {name: stack.enter_context(cli.atomic_path(p)) for name, p in paths.items()}
            _write(parts, rate, length, level, mix_tmp, tmps)
        parts.clear()                  # (the memory maps close before the folder goes)
    for old in folder.glob(f"{wav_path.stem}_*.wav"):
        if old not in paths.values() and old.stem[len(wav_path.stem) + 1:] in (*D.INSTRUMENTS, OTHER):
            old.unlink()
    return [str(p) for p in paths.values()]


def zip_stems(stem_paths, zip_path: str | Path) -> str:
    """The stems in one zip (names without folders), written atomically."""
    with cli.atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for p in stem_paths:
            z.write(p, Path(p).name)
    return str(zip_path)
