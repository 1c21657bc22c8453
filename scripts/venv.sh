#!/usr/bin/env bash
# Create or refresh a virtual environment with tutorlib and everything it needs, fast (uv) and CPU-only.
#   scripts/venv.sh                  .venv at the tested versions (requirements/lock.txt): runtime + test +
#                                    PEFT + energy + browser extras (what `make demo` / `make test` use)
#   VENV=.venv-latest LATEST=1 scripts/venv.sh
#                                    the newest versions pyproject.toml allows, ignoring the lock (`make test-latest`)
#   WHEELHOUSE=/media/usb/wheels scripts/venv.sh
#                                    offline: every package from that folder, never the network (`make wheelhouse`)
# A CUDA build of torch is never downloaded by accident: torch is pinned to the CPU wheel when one
# lies on disk (PIP_FIND_LINKS / /opt/wheels), otherwise taken from PyTorch's CPU index. The lock
# (torch==X+cpu, no CUDA package) is read as constraints without its index line: uv would otherwise look
# for every package on PyTorch's index first, and an offline machine cannot reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH=${TUTORLIB_TORCH:-torch==2.13.0}
LOCK=requirements/lock.txt
stamp=$VENV/.tutorlib-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/venv.sh ] && [ "$stamp" -nt "$LOCK" ]; then
  exit 0   # up to date
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# --compile-bytecode: every module is compiled once here, at install. Without it each new Python process
# (a lesson's kernel, each notebook the grader runs, a test's subprocess) compiles torch and transformers
# again wherever .pyc files cannot be written (PYTHONDONTWRITEBYTECODE, the grader's read-only sandbox):
# a process importing the kit's models took 8.6 s that way and 3.4 s with the compiled files (bench/RESULTS.md
# section 7).
uv_run=("$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python")
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
grep -v '^--' "$LOCK" > "$constraints"
if [ -n "${WHEELHOUSE:-}" ]; then
  # Offline: pip itself installs uv from the wheelhouse, then uv takes everything from there.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" uv
  "${uv_run[@]}" --offline --no-index --find-links "$WHEELHOUSE" -c "$constraints" -e ".[dev,browser]"
else
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv
  links=()
  for d in ${PIP_FIND_LINKS:-} /opt/wheels; do [ -d "$d" ] && links+=(--find-links "$d"); done
  if ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0+cpu* >/dev/null 2>&1 || ls /opt/wheels/torch-2.13.0+cpu* >/dev/null 2>&1; then
    torch_src=("${links[@]}")
  else
    torch_src=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
  fi
  # torch first, alone, so that the resolver never looks for another build.
  "${uv_run[@]}" "${torch_src[@]}" "$TORCH"
  if [ -n "${LATEST:-}" ]; then
    "${uv_run[@]}" "${links[@]}" --upgrade "$TORCH" -e ".[dev,browser]"   # the newest allowed, lock ignored
  else
    "${uv_run[@]}" "${links[@]}" -c "$constraints" "$TORCH" -e ".[dev,browser]"  # the tested versions
  fi
fi
# An environment installed before --compile-bytecode was used: compile what it holds, once (about 20 s).
# compileall's exit code is ignored: a few test files inside packages are written for newer Pythons, fail to
# compile here and are never imported.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! ls "$site"/torch/__pycache__/__init__.*.pyc >/dev/null 2>&1; then
  "$VENV/bin/python" -m compileall -q -j 0 "$site" >/dev/null 2>&1 || true
fi
touch "$stamp"
echo "$VENV ready in $(( $(date +%s) - start )) s: $("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
