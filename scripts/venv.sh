#!/usr/bin/env bash
# Create or refresh .venv with tutorlib and everything it needs, fast (uv) and CPU-only.
#   scripts/venv.sh          runtime + test + PEFT + energy extras (what `make demo` / `make test` use)
# A CUDA build of torch is never downloaded by accident: torch is pinned to the CPU wheel when one
# lies on disk (PIP_FIND_LINKS / /opt/wheels), otherwise taken from PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=${TUTORLIB_TORCH:-torch==2.13.0}
stamp=.venv/.tutorlib-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/venv.sh ]; then
  exit 0   # up to date
fi
start=$(date +%s)
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check uv
links=()
for d in ${PIP_FIND_LINKS:-} /opt/wheels; do [ -d "$d" ] && links+=(--find-links "$d"); done
if ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0+cpu* >/dev/null 2>&1 || ls /opt/wheels/torch-2.13.0+cpu* >/dev/null 2>&1; then
  torch_src=("${links[@]}")
else
  torch_src=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi
# torch first, alone, so that the resolver never looks for another build.
.venv/bin/uv pip install -q --python .venv/bin/python "${torch_src[@]}" "$TORCH"
.venv/bin/uv pip install -q --python .venv/bin/python "${links[@]}" "$TORCH" -e ".[dev]"
touch "$stamp"
echo "venv ready in $(( $(date +%s) - start )) s: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
