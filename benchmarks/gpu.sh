#!/usr/bin/env bash
# Every GPU check of issues 8 and 17 in one go, in under 6 minutes on one H100/H200 (results go into benchmarks/README.md):
#   1. in parallel: a CUDA smoke run of every folder's train.py (2 batches of synthetic data with the CUDA defaults:
#      bf16 autocast, channels_last, cudnn.benchmark; each must exit 0 and write last.pth), 08's fine-tuning from its
#      scratch run, 03 with --augment (TensorLoader crop + flip on the GPU), on the DataLoader path (pinned memory,
#      workers) and under torchrun (DDP over nccl), and the CUDA-only tests (tests/test_cuda.py and the two beside their
#      CPU twins);
#   2. alone: end to end, the notes' 10-epoch loop vs 03_cifar_train/train.py defaults, --compile and --compile-mode
#      reduce-overhead (CUDA graphs), and the bare-loop ceiling (benchmarks/end_to_end_gpu.py);
#   3. alone: model step time, our MobileNetV2 / GoogLeNet vs torchvision's (benchmarks/model_step_time.py).
#
#   bash benchmarks/gpu.sh OUT                    # on a CUDA machine, from any directory: logs, runs and summary in OUT
#   bash benchmarks/gpu.sh                        # the same into a temporary folder, removed at the end
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh OUT # the same steps, tiny, on a CPU: checks this script without a GPU
#   E2E_ARGS="--variant=--no-amp" bash benchmarks/gpu.sh OUT   # extra flags for end_to_end_gpu.py
#   STEPS="tests e2e" E2E_VARIANTS="--cuda-graph" bash benchmarks/gpu.sh OUT   # a rerun of some steps only
# OUT/summary.md gets the table of steps (result, seconds); OUT/logs/ one log per step; OUT/runs/ each smoke run's
# checkpoints and TensorBoard events. Exit code: 0 when every step passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PYTHON:-python}
E2E_ARGS=${E2E_ARGS:-}
JOBS=${JOBS:-6}  # smoke runs at a time in step 1 (the GPU has room; the CPU cores start the processes)
STEPS=" ${STEPS:-smoke tests e2e step} "  # which steps run: smoke and tests (step 1), e2e (2), step (3)
# train.py variants of the end-to-end table besides its defaults, separated by '|'
E2E_VARIANTS=${E2E_VARIANTS:---cuda-graph|--compile --compile-mode reduce-overhead}  # plain --compile: README
if [ $# -ge 1 ]; then
  OUT=$1
else
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT/logs" "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
START=$SECONDS
printf '| step | result | seconds |\n|---|---|---:|\n' > "$OUT/summary.md"

slug() { echo "$1" | tr -c 'A-Za-z0-9_.\n-' '_'; }

job() {  # job NAME OUTPUT_DIR|- COMMAND...: runs to OUT/logs/NAME.log, leaves OUT/logs/NAME.result; OUTPUT_DIR must get last.pth
  local name=$1 out=$2 t0=$SECONDS rc=0 log
  shift 2
  log="$OUT/logs/$(slug "$name")"
  timeout 180 "$@" > "$log.log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ] && [ "$out" != - ] && [ ! -f "$out/last.pth" ]; then rc="no last.pth"; fi
  if [ "$rc" = 0 ]; then echo "| $name | ok | $((SECONDS - t0)) |" > "$log.result"
  else echo "| $name | FAILED ($rc) | $((SECONDS - t0)) |" > "$log.result"; fi
}

spawn() {  # spawn NAME ...: job in the background, at most JOBS at once; NAMES keeps the order for the summary
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  NAMES+=("$1")
  job "$@" &
}

bench() {  # bench NAME LIMIT COMMAND...: alone on the machine; its table goes to stdout and OUT/logs/NAME.log
  local name=$1 limit=$2 t0=$SECONDS rc=0 log
  shift 2
  log="$OUT/logs/$(slug "$name")"
  echo; echo "## $name"
  timeout "$limit" "$@" 2> "$log.err" | tee "$log.log" || rc=$?
  if [ "$rc" -eq 0 ]; then echo "| $name | ok | $((SECONDS - t0)) |" >> "$OUT/summary.md"; else
    echo "--- $name failed (exit $rc); last lines of stderr:"; tail -n 15 "$log.err"
    echo "| $name | FAILED (exit $rc) | $((SECONDS - t0)) |" >> "$OUT/summary.md"
  fi
}

if [[ $DEVICE == cuda* ]]; then
  if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: DEVICE=$DEVICE but CUDA is not available here (DEVICE=cpu QUICK=1 checks this script on a CPU)" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/logs/nvidia-smi.log" || true
fi
$PY -c "import sys; sys.path.insert(0, 'benchmarks'); from timing import machine; print(machine())" | tee "$OUT/machine.txt"

echo "## 1. smoke: every folder's train.py on $DEVICE, 2 batches ($JOBS at a time), and the CUDA-only tests"
NAMES=()
SMOKE=(--data synthetic --synthetic-size 64 --device "$DEVICE" --epochs 1 --limit-batches 2)
if [[ $STEPS == *" smoke "* ]]; then
  for script in [0-9][0-9]_*/train.py; do
    folder=$(dirname "$script")
    [ "$folder" = 08_transfer ] && continue
    spawn "smoke $folder" "$OUT/runs/$folder" $PY "$script" "${SMOKE[@]}" --output-dir "$OUT/runs/$folder"
  done
  if [ -f 08_transfer/train.py ]; then  # 08's default method fine-tunes a trained model: train the source model first
    NAMES+=("smoke 08_transfer (scratch, source task)" "smoke 08_transfer finetune (freeze phase, then unfrozen)")
    (job "smoke 08_transfer (scratch, source task)" "$OUT/runs/08_transfer" $PY 08_transfer/train.py "${SMOKE[@]}" \
       --synthetic-task source --method scratch --output-dir "$OUT/runs/08_transfer"
     job "smoke 08_transfer finetune (freeze phase, then unfrozen)" "$OUT/runs/08ft" $PY 08_transfer/train.py \
       "${SMOKE[@]}" --epochs 2 --method finetune --freeze-epochs 1 --weights "$OUT/runs/08_transfer/last.pth" \
       --output-dir "$OUT/runs/08ft") &
  fi
  spawn "smoke 03 --augment (crop + flip on the device)" "$OUT/runs/03aug" \
    $PY 03_cifar_train/train.py "${SMOKE[@]}" --augment --output-dir "$OUT/runs/03aug"
  spawn "smoke 03 --loader dataloader -j 2" "$OUT/runs/03dl" \
    $PY 03_cifar_train/train.py "${SMOKE[@]}" --loader dataloader -j 2 --output-dir "$OUT/runs/03dl"
  spawn "smoke 03 under torchrun (DDP)" "$OUT/runs/03ddp" \
    $PY -m torch.distributed.run --standalone --nproc_per_node=1 03_cifar_train/train.py "${SMOKE[@]}" \
    --output-dir "$OUT/runs/03ddp"
fi
if [[ $STEPS == *" tests "* ]]; then
  spawn "CUDA-only tests (pytest)" - $PY -m pytest -p no:cacheprovider -rs tests/test_cuda.py tests/test_cuda_graph.py \
    tests/test_tensor_loader.py::test_cuda_batches_stay_on_the_device_and_match_the_cpu_order \
    tests/test_engine.py::test_sync_bn_trains_on_cuda
fi
wait
for name in "${NAMES[@]}"; do
  cat "$OUT/logs/$(slug "$name").result" >> "$OUT/summary.md"
  if ! grep -q '| ok |' "$OUT/logs/$(slug "$name").result"; then
    echo "--- $name failed; last lines of its log:"; tail -n 15 "$OUT/logs/$(slug "$name").log"
  fi
done
echo "step 1: $((SECONDS - START)) s"

if [ "$QUICK" = 1 ]; then
  E2E=(--train-size 512 --test-size 128 --epochs 1)
  STEP=(--batch-size 2 --image-size 64 --rounds 1)
else
  E2E=()
  STEP=(--batch-size 64 --rounds 21)
fi
VARIANTS=()
IFS='|' read -ra split <<< "$E2E_VARIANTS"
for v in "${split[@]}"; do VARIANTS+=("--variant=$v"); done
# shellcheck disable=SC2086  # E2E_ARGS is a list of flags
[[ $STEPS == *" e2e "* ]] && bench "2. end to end: notes' loop vs 03_cifar_train/train.py" 300 \
  $PY benchmarks/end_to_end_gpu.py --device "$DEVICE" "${E2E[@]}" "${VARIANTS[@]}" $E2E_ARGS
[[ $STEPS == *" step "* ]] && bench "3. model step time vs torchvision" 120 \
  $PY benchmarks/model_step_time.py --device "$DEVICE" "${STEP[@]}"

echo
echo "## summary ($((SECONDS - START)) s in all; target < 360 s)"
cat "$OUT/summary.md"
! grep -q FAILED "$OUT/summary.md"
