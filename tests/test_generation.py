"""Controlled generation on a hand-made video npz (SPEC section 5) with a tiny random model."""
import miditoolkit
import numpy as np

from vidscore import constants as D
from vidscore.generation.generate import Controls, generate

N_BEAT = 64  # 4 bars of 16 ticks


def p(i):
    return round(100 * i / N_BEAT) + 1


# [bar-beat, density, strength, i_beat, n_beat, p_beat]
ROWS = np.array([
    [17, 5, 0, 0, N_BEAT, p(0)],
    [5, 0, 4, 4, N_BEAT, p(4)],        # bar 0, position 4, strength 4
    [9, 0, 1, 8, N_BEAT, p(8)],        # strength 1: dropped by the rules
    [17, 3, 0, 16, N_BEAT, p(16)],
    [1, 0, 7, 16, N_BEAT, p(16)],      # bar 1, position 0
    [13, 0, 3, 28, N_BEAT, p(28)],     # bar 1, position 12
    [17, 2, 0, 32, N_BEAT, p(32)],
    [17, 9, 0, 48, N_BEAT, p(48)],
    [16, 0, 10, 63, N_BEAT, p(63)],    # last tick of the song
])
KEPT = [(0, 5, 4), (1, 1, 7), (1, 13, 3), (3, 16, 10)]   # (bar, bar-beat, strength)


def init():
    return np.asarray(D.RELEASED_INIT_BLOCK)


def beats(song):
    t = np.asarray(song.tokens)
    return t[(t[:, D.COL_TYPE] == D.TYPE_M) & (t[:, D.COL_BARBEAT] != D.BAR)]


def test_every_kept_visual_beat_is_forced_on_each_track(tiny):
    songs = generate(tiny, ROWS, init(), num_songs=3, controls=Controls(C=1.0), seed=1)
    for song in songs:
        t = np.asarray(song.tokens)
        assert (t[-1] == 0).all()                                    # EOS row
        bars = t[t[:, D.COL_BARBEAT] == D.BAR]
        assert len(bars) == 4                                        # exactly the video's bars
        assert bars[:, D.COL_IBEAT].tolist() == [0, 16, 32, 48]
        assert bars[:, D.COL_DENSITY].tolist() == [5, 3, 2, 9]       # C = 1: the video's densities
        b = beats(song)
        for bar, bb, strength in KEPT:
            for track in (D.DRUMS, D.PIANO, D.GUITAR):
                hit = b[(b[:, D.COL_IBEAT] == 16 * bar + bb - 1) & (b[:, D.COL_BARBEAT] == bb)
                        & (b[:, D.COL_STRENGTH] == strength) & (b[:, D.COL_INSTRUMENT] == track)]
                assert len(hit) >= 1, (bar, bb, track)
        assert sorted({(f[0], f[1], f[2]) for f in song.forced}) == sorted(KEPT)
        assert (np.diff(t[:-1, D.COL_IBEAT]) >= 0).all()             # time never goes back
        body = t[:-1]
        assert (body[:, D.COL_PBEAT] == np.minimum(101, 100 * body[:, D.COL_IBEAT] // N_BEAT + 1)).all()
        notes = t[t[:, D.COL_TYPE] == D.TYPE_NOTE]
        assert (notes[:, D.COL_PITCH] > 0).all() and (notes[:, D.COL_DURATION] > 0).all()
        # Note rows as the tokenizer writes them for training (SPEC 2): bar-beat, density and
        # strength 0 (the model never saw a Note with its position in the bar-beat field)
        assert (notes[:, [D.COL_BARBEAT, D.COL_DENSITY, D.COL_STRENGTH]] == 0).all()
        from vidscore.music.representation import notes_to_tokens, tokens_to_notes
        again = notes_to_tokens(tokens_to_notes(t))
        ref = again[again[:, D.COL_TYPE] == D.TYPE_NOTE]
        assert (ref[:, [D.COL_BARBEAT, D.COL_DENSITY, D.COL_STRENGTH]] == 0).all() and len(ref) == len(notes)
        is_beat = (t[:, D.COL_TYPE] == D.TYPE_M) & (t[:, D.COL_BARBEAT] != D.BAR)
        after = t[1:][is_beat[:-1]]
        assert (after[:, D.COL_TYPE] == D.TYPE_NOTE).all()           # every Beat has its notes
        assert (after[:, D.COL_INSTRUMENT] == t[:-1][is_beat[:-1]][:, D.COL_INSTRUMENT]).all()
        assert (notes[:, D.COL_IBEAT] >= 48).any()                   # the last bar is not empty
        for i in np.flatnonzero(is_beat):                            # strength = notes of the simu-note
            k = i + 1
            while t[k, D.COL_TYPE] == D.TYPE_NOTE:
                k += 1
            assert k - i - 1 == t[i, D.COL_STRENGTH]
            assert len(set(t[i + 1:k, D.COL_PITCH])) == k - i - 1       # distinct pitches


def test_same_seed_same_song(tiny):
    a = generate(tiny, ROWS, init(), num_songs=2, seed=7)
    b = generate(tiny, ROWS, init(), num_songs=2, seed=7)
    c = generate(tiny, ROWS, init(), num_songs=2, seed=8)
    assert all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, b))
    assert not all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, c) if len(x.tokens) == len(y.tokens)) \
        or any(len(x.tokens) != len(y.tokens) for x, y in zip(a, c))


def test_on_step_reports_the_share_of_bars_composed(tiny):
    seen = []
    songs = generate(tiny, ROWS, init(), num_songs=2, seed=7, on_step=lambda f, n: seen.append((f, n)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)                  # never goes back
    assert fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions)
    # the bar each song reached: 4 bars, so the share moves in quarters (halved over two songs)
    assert set(round(8 * f) for f in fractions) <= set(range(9))
    # tokens: the songs' tokens so far (the final EOS is appended after the last step)
    assert seen[-1][1] == sum(len(s.tokens) - 1 for s in songs)
    # the same songs with and without the callback
    again = generate(tiny, ROWS, init(), num_songs=2, seed=7)
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(songs, again))


def test_a_song_does_not_depend_on_its_batch(tiny):
    """The fields a step does not use (a Note's bar-beat, density, instrument and strength; a
    metrical token's pitch and duration) are sampled only when some song of the batch uses
    them, but every song's stream moves on by one draw per field either way.  So song 0 made
    alone is song 0 of a batch of three, whose other songs make other fields needed at other
    steps."""
    batch = generate(tiny, ROWS, init(), num_songs=3, seed=5)
    alone = generate(tiny, ROWS, init(), num_songs=1, seed=5)[0]
    assert np.array_equal(alone.tokens, batch[0].tokens)
    types = [np.asarray(s.tokens)[:, D.COL_TYPE] for s in batch]
    n = min(map(len, types))
    assert (types[0][:n] != types[1][:n]).any()     # the batch's needs differed from song 0's own


def test_int8_songs_do_not_depend_on_their_batch(tiny):
    """int8 weights quantize each layer's input on the fly with one scale: the generation step
    does it per song, so song 0 alone is song 0 of a batch, eager and traced."""
    import copy
    for model in (copy.deepcopy(tiny).quantize_int8(), copy.deepcopy(tiny).quantize_int8().freeze()):
        batch = generate(model, ROWS, init(), num_songs=3, seed=5)
        alone = generate(model, ROWS, init(), num_songs=1, seed=5)[0]
        assert np.array_equal(alone.tokens, batch[0].tokens)


def test_forced_tracks_limited_to_allowed_instruments(tiny):
    songs = generate(tiny, ROWS, init(), num_songs=2, controls=Controls(instruments=(2, 4)), seed=3)
    for song in songs:
        t = np.asarray(song.tokens)
        used = set(t[(t[:, D.COL_TYPE] > 0) & (t[:, D.COL_BARBEAT] != D.BAR), D.COL_INSTRUMENT].tolist())
        assert used <= {2, 4}
        assert {f[3] for f in song.forced} == {2}                    # Piano is the only allowed forced track


def test_midi_has_the_given_tempo(tiny, tmp_path):
    from vidscore.music.midi_write import tokens_to_midi
    song = generate(tiny, ROWS, init(), num_songs=1, seed=2)[0]
    tokens_to_midi(np.asarray(song.tokens), tmp_path / "song.mid", 97.5)
    midi = miditoolkit.MidiFile(str(tmp_path / "song.mid"))
    assert abs(midi.tempo_changes[0].tempo - 97.5) < 1e-3     # MIDI stores whole microseconds per beat
    t = np.asarray(song.tokens)
    notes = t[t[:, D.COL_TYPE] == D.TYPE_NOTE]
    assert sum(len(i.notes) for i in midi.instruments) == len(notes)
