#!/usr/bin/env bash
# The GPU check: every lesson in fast mode, `tutorlib compare --fast` (fp32, and mixed precision when the
# training loop offers it) and the bench's step-cost part, all on CUDA, then a short report.
#   scripts/gpu_check.sh [FOLDER]      default gpu-check/: report.md, report.json, one log per step
#   DEVICE=cpu scripts/gpu_check.sh    the same steps on the CPU (to check the script where no GPU is)
#   LESSONS="03 04" scripts/gpu_check.sh   only some lessons
# Run it on a GPU machine after `scripts/venv.sh` and `tutorlib download --all --prepare`, with a CUDA
# build of torch (TUTORLIB_TORCH='torch==2.13.0' plus PyTorch's CUDA index, or the machine's own torch).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
DEVICE=${DEVICE:-cuda}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
mkdir -p "$out"
export TUTORLIB_OFFLINE=1 TUTORLIB_MODE=fast TUTORLIB_DEVICE=$DEVICE
if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: torch sees no CUDA GPU (torch $("$PY" -c 'import torch; print(torch.__version__)')). Install a CUDA build" \
       "of torch, or run DEVICE=cpu $0 to check the script itself." >&2
  exit 2
fi
rows="$out/rows.tsv"
: > "$rows"

# Peak GPU memory of everything running during one step: nvidia-smi sampled every 0.2 s (MiB).
sampler_start() {
  peak_file=$(mktemp)
  echo 0 > "$peak_file"
  if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
    ( peak=0; while sleep 0.2; do
        used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1 | tr -d ' ')
        [ -n "$used" ] && [ "$used" -gt "$peak" ] && peak=$used && echo "$peak" > "$peak_file"
      done ) &
    sampler=$!
  else
    sampler=
  fi
}
sampler_stop() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
  if [ "$DEVICE" = cuda ]; then peak="$(cat "$peak_file") MiB"; else peak="n/a (cpu)"; fi
  rm -f "$peak_file"
}
# step NAME COMMAND...: run it, log it, one row: name, pass/fail, seconds, peak GPU memory
step() {
  local name=$1; shift
  local start=$(date +%s.%N)
  sampler_start
  "$@" > "$out/$name.log" 2>&1
  local rc=$?
  sampler_stop
  local seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  local result=$([ $rc -eq 0 ] && echo pass || echo "FAIL (exit $rc, see $name.log)")
  printf '%s\t%s\t%s\t%s\n' "$name" "$result" "$seconds" "$peak" >> "$rows"
  echo "$name: $result, $seconds s, peak GPU memory $peak"
}

for nb in notebooks/[0-9]*.ipynb; do
  lesson=$(basename "$nb" .ipynb)
  if [ -n "${LESSONS:-}" ] && ! [[ " $LESSONS " == *" ${lesson:0:2} "* ]]; then continue; fi
  step "lesson-$lesson" "$BIN/jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.timeout=1200 \
       --output-dir "$out/executed" "$nb"
done
step compare-fp32 "$BIN/tutorlib" compare --task sentiment --fast --overwrite --out "$out/compare-fp32"
# Mixed precision comes from Accelerate's launcher (TrainConfig.mixed_precision=None reads it): bf16 on one GPU.
step compare-bf16 "$BIN/accelerate" launch --num_processes 1 --mixed_precision bf16 -m tutorlib \
     compare --task sentiment --fast --overwrite --out "$out/compare-bf16"
# The bench's step costs write bench/results/step_costs.json: keep the committed CPU file, file this one here.
saved=$(mktemp); cp bench/results/step_costs.json "$saved" 2>/dev/null
step bench-step-costs "$PY" bench/run.py --quick --only step-costs --device "$DEVICE"
cp bench/results/step_costs.json "$out/step_costs.json" 2>/dev/null
[ -s "$saved" ] && cp "$saved" bench/results/step_costs.json; rm -f "$saved"

"$PY" - "$out" "$DEVICE" <<'PY'
import json, platform, sys
from pathlib import Path
import torch, transformers
out, device = Path(sys.argv[1]), sys.argv[2]
name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({platform.processor() or platform.machine()})"
rows = [dict(zip(("step", "result", "seconds", "peak_gpu_memory"), line.split("\t")))
        for line in (out / "rows.tsv").read_text().splitlines()]
report = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__, "mode": "fast", "rows": rows}
(out / "report.json").write_text(json.dumps(report, indent=1))
lines = [f"# GPU check: {name}", "", f"torch {torch.__version__}, transformers {transformers.__version__}, "
         "lessons in fast mode (TUTORLIB_MODE=fast), TUTORLIB_DEVICE=" + device, "",
         "| step | result | wall time (s) | peak GPU memory (nvidia-smi, whole GPU) |", "|---|---|---|---|"]
lines += [f"| {r['step']} | {r['result']} | {r['seconds']} | {r['peak_gpu_memory']} |" for r in rows]
(out / "report.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
failed = [r["step"] for r in rows if r["result"].startswith("FAIL")]
sys.exit(1 if failed else 0)
PY
