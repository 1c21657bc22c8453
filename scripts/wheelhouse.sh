#!/usr/bin/env bash
# Put every Python package a learner needs into one folder (a USB stick), then prove it is enough:
# a fresh virtual environment is installed from that folder alone, with the network off
# (`uv pip install --offline --no-index --find-links`), and `tutorlib doctor` runs in it.
#   scripts/wheelhouse.sh [FOLDER]        default: wheelhouse/
#   PLATFORM=win_amd64 scripts/wheelhouse.sh /media/usb/wheels-windows
#                                         wheels for another platform (win_amd64, macosx_11_0_arm64,
#                                         manylinux_2_28_x86_64); the offline check then cannot run here.
# The wheels are this machine's Python version unless PYTHON_VERSION=3.12 (e.g.) is given.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-wheelhouse}
mkdir -p "$out"
start=$(date +%s)
target=()
if [ -n "${PLATFORM:-}" ]; then
  target=(--platform "$PLATFORM" --only-binary=:all: --python-version "${PYTHON_VERSION:-$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}")
fi
links=()
for d in ${PIP_FIND_LINKS:-} /opt/wheels; do [ -d "$d" ] && links+=(--find-links "$d"); done
# The lock pins torch==X+cpu (no CUDA package) and names PyTorch's CPU index on its first lines. When the CPU
# wheel already lies in a local folder, that index line is left out, so a machine that cannot reach it still works.
lock=$(mktemp)
check=$(mktemp -d)
trap 'rm -rf "$lock" "$check"' EXIT
if [ -z "${PLATFORM:-}" ] && ls ${PIP_FIND_LINKS:-/opt/wheels}/torch-*+cpu* >/dev/null 2>&1; then
  grep -v '^--' requirements/lock.txt > "$lock"
else
  cp requirements/lock.txt "$lock"
fi
# 1. every locked package (torch: the CPU wheel), plus the installers and the build backend
.venv/bin/python -m pip download -q --disable-pip-version-check -d "$out" "${links[@]}" "${target[@]}" \
  -r "$lock" uv pip "setuptools>=69" wheel
# 2. the kit itself, as a wheel (it carries the reference results)
.venv/bin/uv build -q --wheel --out-dir "$out" .
echo "$out: $(ls "$out" | wc -l) files, $(du -sm "$out" | cut -f1) MiB in $(( $(date +%s) - start )) s"
if [ -n "${PLATFORM:-}" ]; then
  echo "wheels for $PLATFORM: not installable here, so not checked offline"; exit 0
fi
# 3. the check: a fresh environment from the folder alone, network off
python3 -m venv "$check/venv"
"$check/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$out" uv
UV_CACHE_DIR="$check/uv-cache" "$check/venv/bin/uv" pip install -q --python "$check/venv/bin/python" \
  --offline --no-index --find-links "$out" -c <(grep -v '^--' requirements/lock.txt) "tutorlib[dev,browser]"
"$check/venv/bin/tutorlib" doctor > "$check/doctor.txt"
head -4 "$check/doctor.txt"
# no CUDA library may have slipped in (the CPU torch needs none)
if ls "$out" | grep -E '^(nvidia_(cu|nccl|nvjit|nvshmem|nvtx)|triton-|cuda_)'; then
  echo "CUDA packages above are in $out: the lock must hold only the CPU environment" >&2; exit 1
fi
echo "offline install from $out: ok ($(( $(date +%s) - start )) s in all)"
