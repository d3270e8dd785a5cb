#!/usr/bin/env bash
# Build and install pytorch-fast-transformers (the original's attention kernels) into the venv.
# It is published as source only. Its setup.py builds CUDA kernels whenever it finds nvcc, which
# fails against a CPU-only torch, so on a CPU torch we hide every PATH entry holding nvcc and
# unset CUDA_HOME for the build. Needs --no-build-isolation so the build sees the venv's torch.
set -euo pipefail
PY=${1:-.venv/bin/python}
VERSION=0.4.0
if "$PY" -c "import fast_transformers.causal_product" 2>/dev/null; then
  echo "pytorch-fast-transformers already installed"; exit 0
fi
"$PY" -m pip install -q ninja wheel
cuda=$("$PY" -c "import torch; print(int(torch.version.cuda is not None and torch.cuda.is_available()))")
if [ "$cuda" = "1" ]; then
  build_path=$PATH
else
  build_path=""
  IFS=: read -ra dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    [ -n "$d" ] && [ -x "$d/nvcc" ] && continue
    build_path=${build_path:+$build_path:}$d
  done
  # keep the venv first so `python` and `ninja` resolve to it
  build_path="$(dirname "$PY"):$build_path"
fi
echo "building pytorch-fast-transformers $VERSION (CPU kernels take ~6 minutes on 2 cores)..."
env -u CUDA_HOME -u CUDA_PATH PATH="$build_path" MAX_JOBS="$(nproc)" \
  "$PY" -m pip install --no-build-isolation --no-cache-dir "pytorch-fast-transformers==$VERSION"
"$PY" -c "import fast_transformers.causal_product; print('pytorch-fast-transformers OK')"
