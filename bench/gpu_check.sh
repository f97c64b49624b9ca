#!/usr/bin/env bash
# The GPU check: one script a CUDA machine with only the package index runs from the project root
# in under 8 minutes (bench/README.md, "GPU check"). Every step has its own timeout and writes
# $OUT/<step>.log and one line to $OUT/summary.txt; at the end every log is packed into
# $OUT/logs.tar.gz beside the summary, since the device tool brings back at most 8 files.
#
#     OUT=/tmp/gpu-check bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
LOGS="$OUT/logs"
mkdir -p "$LOGS"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} PYTHONUNBUFFERED=1

# step NAME SECONDS COMMAND...: run it with a timeout, log it, and summarize it in one line.
step() {
    local name=$1 limit=$2
    shift 2
    local began=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local code=$?
    local verdict=ok
    [ "$code" -eq 124 ] && verdict="TIMEOUT after ${limit}s"
    [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && verdict="FAILED (exit $code)"
    local last
    last=$(grep -v '^\s*$' "$LOGS/$name.log" | tail -n 1 | cut -c1-160)
    printf '%-14s %-22s %4ss  %s\n' "$name" "$verdict" "$((SECONDS - began))" "$last" | tee -a "$SUMMARY"
}

step install 150 bash -c 'python3 -m venv .venv-gpu && .venv-gpu/bin/pip install --quiet -e ".[dev]"'
PY=.venv-gpu/bin/python
step versions 20 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; \
    $PY -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \
    \"cudnn\", torch.backends.cudnn.version(), torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))'"
step pytest-gpu 45 "$PY" -m pytest -q -m gpu -p no:cacheprovider
step train 40 "$PY" -m sandbox train search_spaces/fmnist_baseline.yaml --device cuda --epochs 3 --out "$OUT/run"
step evaluate 20 "$PY" -m sandbox evaluate "$OUT/run" --device cuda
# The timeouts add up to 480 s: 8 minutes even if every step runs to its limit.
for batch in 128 1024; do
    step "speed-$batch" 35 "$PY" bench/train_speed.py --device cuda --repeat-to 60000 --batch-size "$batch"
    step "compiled-$batch" 45 "$PY" bench/train_speed.py --device cuda --repeat-to 60000 --batch-size "$batch" \
        --compile reduce-overhead --skip-tutorial
done
step search 45 "$PY" -m sandbox search search_spaces/quickstart.yaml --device cuda --workers 2 --trials 4 \
    --epochs 2 --out "$OUT/search"

tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . && rm -rf "$LOGS" "$OUT/run" "$OUT/search"
echo "summary: $SUMMARY; logs: $OUT/logs.tar.gz"
