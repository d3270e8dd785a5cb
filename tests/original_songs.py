"""Small LPD-5-style multitrack MIDI files, built the same way every time.

tests/fixtures/original_rows.npz holds the rows CMT's own ``midi2numpy_mix.py`` wrote for
these files (made once with ``python tests/original_songs.py --fixture`` and the original
code, see that function); tests/test_originals.py checks our tokenizer against them.
Onsets and durations lie on LPD's grid of 24 steps per beat, so they include notes that
round to zero sixteenths and onsets exactly half way between two sixteenths.
"""
from __future__ import annotations

import numpy as np

TPB = 480                      # MIDI ticks per beat
STEP = TPB // 24               # one LPD pianoroll step
TRACKS = [("Drums", 0, True), ("Piano", 0, False), ("Guitar", 24, False), ("Bass", 32, False),
          ("Strings", 48, False)]
PITCHES = {"Drums": (35, 52), "Piano": (55, 80), "Guitar": (50, 72), "Bass": (28, 48), "Strings": (60, 84)}


def _track_notes(rng, name, n_notes, first_step, last_step):
    lo, hi = PITCHES[name]
    busy = {}
    out = []
    while len(out) < n_notes:
        start = int(rng.integers(first_step, last_step))
        if rng.random() < 0.5:   # often on a sixteenth, as most music is
            start -= start % 6
        dur = int(rng.choice([1, 2, 3, 4, 6, 9, 12, 24, 48, 120])) if name != "Drums" else int(rng.choice([1, 2, 3, 6]))
        pitch = int(rng.integers(lo, hi))
        if any(s < start + dur and start < e for s, e in busy.get(pitch, [])):
            continue
        busy.setdefault(pitch, []).append((start, start + dur))
        out.append((start, start + dur, pitch))
        if name == "Piano" and rng.random() < 0.4 and len(out) < n_notes:   # a chord
            p2 = pitch + 4
            if not any(s < start + dur and start < e for s, e in busy.get(p2, [])):
                busy.setdefault(p2, []).append((start, start + dur))
                out.append((start, start + dur, p2))
    return out


def song(seed: int):
    """A miditoolkit MidiFile: five named tracks on LPD's grid; some tracks too short to keep."""
    import miditoolkit

    rng = np.random.default_rng(seed)
    midi = miditoolkit.MidiFile(ticks_per_beat=TPB)
    midi.tempo_changes = [miditoolkit.TempoChange(120.0, 0)]
    midi.time_signature_changes = [miditoolkit.TimeSignature(4, 4, 0)]
    bars = 3 + seed % 3
    lead = 96 if seed % 2 else 0            # odd seeds start one bar late
    for name, program, drum in TRACKS:
        inst = miditoolkit.Instrument(program=program, is_drum=drum, name=name)
        n = int(rng.integers(22, 40))
        if (seed + len(inst.name)) % 4 == 0:
            n = 12                           # dropped (<= 20 notes), ends before the others
            notes = _track_notes(rng, name, n, lead, lead + 96)
        else:
            notes = _track_notes(rng, name, n, lead, lead + 96 * bars)
        if name == "Drums" or seed == 0:
            notes.append((lead, lead + 1, PITCHES[name][0]))   # 1/24 beat: rounds to 0 sixteenths
        for s, e, p in sorted(notes):
            inst.notes.append(miditoolkit.Note(velocity=int(rng.integers(40, 120)), pitch=p,
                                               start=s * STEP, end=e * STEP))
        midi.instruments.append(inst)
    return midi


SEEDS = list(range(6))


def write_songs(folder):
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in SEEDS:
        p = folder / f"song{s}.mid"
        song(s).dump(str(p))
        paths.append(p)
    return paths


def make_fixture(original_npz_path, out_path, note=""):
    """Keep the rows of the original's output file (its x rows plus the EOS row) per song.

    How tests/fixtures/original_rows.npz was made (once, in /tmp, not by the tests):
        python tests/original_songs.py midis          # writes song0.mid .. song5.mid
        cd <CMT checkout>/src && python midi2numpy_mix.py --midi_dir midis --out_name orig.npz
        python tests/original_songs.py --fixture <CMT checkout>/dataset/orig.npz tests/fixtures/original_rows.npz
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from vidscore.training import original_npz

    meta = original_npz.read_metadata(original_npz_path)
    with np.load(original_npz_path, allow_pickle=False) as z:
        x, mask = z["x"], z["decoder_mask"]
    order = sorted(range(len(meta)), key=lambda i: meta[i]["id"])
    rows, lengths = [], []
    for i in order:
        n = int(mask[i].sum())
        song_rows = np.concatenate([x[i, :n - 1], np.zeros((1, x.shape[2]), x.dtype)])  # + the EOS row
        rows.append(song_rows)
        lengths.append(n)
    np.savez_compressed(out_path, rows=np.concatenate(rows).astype(np.int16),
                        lengths=np.array(lengths, dtype=np.int32),
                        ids=np.array([meta[i]["id"] for i in order]),
                        instruments=np.array([",".join(meta[i]["instruments"]) for i in order]),
                        note=np.array(note))


if __name__ == "__main__":
    import sys
    if sys.argv[1] == "--fixture":
        make_fixture(sys.argv[2], sys.argv[3], " ".join(sys.argv[4:]))
    else:
        write_songs(sys.argv[1])
