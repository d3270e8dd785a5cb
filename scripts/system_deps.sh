#!/usr/bin/env bash
# System programs the pipeline uses: ffmpeg (muxing), fluidsynth + a General MIDI soundfont
# (rendering); and the General MIDI songs with drums that the bundled model's corpus adds to
# music21's (openttd-openmsx, GPL-2; planetblupi-music-midi, GPL-3+; see docs/licences.md).
# Installed with apt-get when run as root and missing; otherwise print the command
# and carry on (the pipeline then stops at MIDI with a one-line message).
set -u
PKGS="ffmpeg fluidsynth fluid-soundfont-gm openttd-openmsx planetblupi-music-midi"
missing=""
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing="$missing ffmpeg"
command -v fluidsynth >/dev/null 2>&1 || missing="$missing fluidsynth"
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$missing fluid-soundfont-gm"
[ -d /usr/share/games/openttd/baseset/openmsx ] || missing="$missing openttd-openmsx"
[ -d /usr/share/planetblupi/music ] || missing="$missing planetblupi-music-midi"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || echo "warning: apt-get could not install$missing; the pipeline will stop at MIDI" >&2
else
  echo "note: missing$missing; install with: sudo apt-get install -y $PKGS" >&2
  echo "note: until then the pipeline writes MIDI only" >&2
fi
exit 0
