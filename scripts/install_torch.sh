#!/usr/bin/env bash
# Install torch 2.13.0 into the venv: the CUDA build where an NVIDIA GPU is present, the CPU
# build everywhere else. A bare `pip install torch` on Linux pulls several GB of CUDA packages,
# so on a CPU machine we first look for a local CPU wheel (in pip's find-links, without asking
# an index) and install that file, its dependencies from the index; otherwise PyTorch's CPU index.
set -euo pipefail
PIP=${1:-.venv/bin/pip}
VERSION=2.13.0
if "$PIP" show torch 2>/dev/null | grep -q "^Version: $VERSION"; then exit 0; fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing the CUDA build of torch $VERSION"
  "$PIP" install "torch==$VERSION"
  exit 0
fi
# A local CPU wheel (pip's find-links, e.g. /opt/wheels): take that file, dependencies from the index.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$PIP" download -q --no-deps --no-index "torch==$VERSION" -d "$tmp" >/dev/null 2>&1 \
   && ls "$tmp"/torch-*+cpu*.whl >/dev/null 2>&1; then
  echo "installing the local CPU wheel of torch $VERSION"
  "$PIP" install "$tmp"/torch-*+cpu*.whl
else
  echo "no GPU: installing the CPU build of torch $VERSION from PyPI and PyTorch's CPU index"
  "$PIP" install "torch==$VERSION" --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
fi
