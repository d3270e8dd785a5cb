#!/usr/bin/env bash
# video -> inference/<name>_metadata.json (metadata) -> inference/<name>.npz (model input).
#   src/video2npz/video2npz.sh video.mp4 [video2metadata.py options, e.g. --exact --is_tempo 1 --my_tempo 100]
# OUT_DIR=... overrides the output folder; PYTHON=... the interpreter (default .venv/bin/python).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $(basename "$0") VIDEO [video2metadata.py options]" >&2
    echo "writes \${OUT_DIR:-inference}/<name>_metadata.json and <name>.npz" >&2
    [ $# -lt 1 ] && exit 2 || exit 0
fi
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
video="$1"; shift
name="$(basename "$video")"; stem="${name%.*}"
out="${OUT_DIR:-$root/inference}"
"$py" "$here/video2metadata.py" --video "$video" --meta_data "$out/${stem}_metadata.json" "$@"
"$py" "$here/metadata2numpy_mix.py" --video "$video" --meta_data "$out/${stem}_metadata.json" --out_dir "$out"
