#!/usr/bin/env bash
# Install torch 2.13.0 into the venv: the CUDA build where an NVIDIA GPU is present, the CPU
# build everywhere else. A bare `pip install torch` on Linux pulls several GB of CUDA packages,
# so on a CPU machine we first look for a local CPU wheel (pip's find-links, with no index),
# then fall back to PyTorch's CPU-only index.
set -euo pipefail
PIP=${1:-.venv/bin/pip}
VERSION=2.13.0
if "$PIP" show torch 2>/dev/null | grep -q "^Version: $VERSION"; then exit 0; fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing the CUDA build of torch $VERSION"
  "$PIP" install "torch==$VERSION"
elif "$PIP" install -q --no-index "torch==$VERSION" 2>/dev/null; then
  echo "installed the local CPU wheel of torch $VERSION"
else
  echo "no GPU: installing the CPU build of torch $VERSION from PyTorch's CPU index"
  "$PIP" install "torch==$VERSION" --index-url https://download.pytorch.org/whl/cpu
fi
