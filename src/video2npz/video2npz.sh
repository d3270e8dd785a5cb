#!/bin/sh
# video -> inference/<name>_metadata.json (metadata) -> inference/<name>.npz (model input).  POSIX sh (dash) or bash:
#   cd src/video2npz && sh video2npz.sh ../../videos/test.mp4          (CMT's README)
#   src/video2npz/video2npz.sh video.mp4 [video2metadata.py options, e.g. --exact --is_tempo 1 --my_tempo 100]
# OUT_DIR=... overrides the output folder; PYTHON=... the interpreter (default .venv/bin/python).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $(basename "$0") VIDEO [video2metadata.py options]" >&2
    echo "writes \${OUT_DIR:-inference}/<name>_metadata.json and <name>.npz" >&2
    if [ $# -lt 1 ]; then exit 2; fi
    exit 0
fi
py="${PYTHON:-$root/.venv/bin/python}"
if [ ! -x "$py" ]; then py="$(command -v python3)"; fi
video="$1"; shift
name="$(basename "$video")"; stem="${name%.*}"
out="${OUT_DIR:-$root/inference}"
"$py" "$here/video2metadata.py" --video "$video" --meta_data "$out/${stem}_metadata.json" "$@"
"$py" "$here/metadata2numpy_mix.py" --video "$video" --meta_data "$out/${stem}_metadata.json" --out_dir "$out"
