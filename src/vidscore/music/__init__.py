"""The music representation: MIDI <-> notes <-> compound tokens, chords, the original's npz."""
