#!/usr/bin/env bash
# Every GPU measurement of issue 8 in one go, in under 5 minutes on one H100/H200 (results go into benchmarks/README.md):
#   1. CUDA smoke test: every folder's train.py for 2 batches on synthetic data with the CUDA defaults (bf16 autocast,
#      channels_last, cudnn.benchmark), each must write last.pth; plus 03 with --augment (TensorLoader crop + flip on the
#      GPU), on the DataLoader path (pinned memory, workers, non_blocking copies) and under torchrun (DDP over nccl);
#   2. end to end: the notes' 10-epoch loop vs 03_cifar_train/train.py defaults (benchmarks/end_to_end_gpu.py);
#   3. model step time: our MobileNetV2 / GoogLeNet vs torchvision's (benchmarks/model_step_time.py).
#
#   bash benchmarks/gpu.sh                        # on a CUDA machine, from any directory
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh     # the same steps, tiny, on a CPU: checks this script without a GPU
#   E2E_ARGS="--variant --compile" bash benchmarks/gpu.sh   # extra flags for end_to_end_gpu.py
# Exit code: 0 when every step passed, 1 otherwise (a summary table lists each step).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PYTHON:-python}
E2E_ARGS=${E2E_ARGS:-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
FAILED=0
printf '| step | result | seconds |\n|---|---|---:|\n' > "$WORK/summary"

record() {  # record NAME STATUS SECONDS
  printf '| %s | %s | %s |\n' "$1" "$2" "$3" >> "$WORK/summary"
  [ "$2" = ok ] || FAILED=1
}

smoke() {  # smoke NAME OUTPUT_DIR COMMAND...: quiet unless it fails; must exit 0 and leave OUTPUT_DIR/last.pth
  local name=$1 out=$2 t0=$SECONDS rc=0
  shift 2
  timeout 180 "$@" > "$WORK/log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ] && [ ! -f "$out/last.pth" ]; then rc="no last.pth"; fi
  if [ "$rc" = 0 ]; then
    record "$name" ok $((SECONDS - t0))
  else
    echo "--- $name failed ($rc); last lines:"; tail -n 15 "$WORK/log"
    record "$name" "FAILED ($rc)" $((SECONDS - t0))
  fi
}

bench() {  # bench NAME LIMIT COMMAND...: its table goes to stdout
  local name=$1 limit=$2 t0=$SECONDS rc=0
  shift 2
  echo; echo "## $name"
  timeout "$limit" "$@" 2> "$WORK/err" || rc=$?
  if [ "$rc" -eq 0 ]; then record "$name" ok $((SECONDS - t0)); else
    echo "--- $name failed (exit $rc); last lines of stderr:"; tail -n 15 "$WORK/err"
    record "$name" "FAILED (exit $rc)" $((SECONDS - t0))
  fi
}

if [[ $DEVICE == cuda* ]]; then
  if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: DEVICE=$DEVICE but CUDA is not available here (DEVICE=cpu QUICK=1 checks this script on a CPU)" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
$PY -c "import sys; sys.path.insert(0, 'benchmarks'); from timing import machine; print(machine())"

echo "## 1. smoke: every folder's train.py on $DEVICE, 2 batches"
SMOKE=(--data synthetic --synthetic-size 64 --device "$DEVICE" --epochs 1 --limit-batches 2)
for script in [0-9][0-9]_*/train.py; do
  folder=$(dirname "$script")
  extra=()
  # 08's default method fine-tunes a trained model: train its source model from scratch here, fine-tune it below
  [ "$folder" = 08_transfer ] && extra=(--synthetic-task source --method scratch)
  smoke "smoke $folder" "$WORK/$folder" $PY "$script" "${SMOKE[@]}" "${extra[@]}" --output-dir "$WORK/$folder"
done
if [ -f 08_transfer/train.py ]; then
  smoke "smoke 08_transfer finetune (freeze phase, then unfrozen)" "$WORK/08ft" $PY 08_transfer/train.py "${SMOKE[@]}" \
    --epochs 2 --method finetune --freeze-epochs 1 --weights "$WORK/08_transfer/last.pth" --output-dir "$WORK/08ft"
fi
smoke "smoke 03 --augment (crop + flip on the device)" "$WORK/03aug" \
  $PY 03_cifar_train/train.py "${SMOKE[@]}" --augment --output-dir "$WORK/03aug"
smoke "smoke 03 --loader dataloader -j 2" "$WORK/03dl" \
  $PY 03_cifar_train/train.py "${SMOKE[@]}" --loader dataloader -j 2 --output-dir "$WORK/03dl"
smoke "smoke 03 under torchrun (DDP)" "$WORK/03ddp" \
  $PY -m torch.distributed.run --standalone --nproc_per_node=1 03_cifar_train/train.py "${SMOKE[@]}" \
  --output-dir "$WORK/03ddp"

if [ "$QUICK" = 1 ]; then
  E2E=(--train-size 512 --test-size 128 --epochs 1)
  STEP=(--batch-size 2 --image-size 64 --rounds 1)
else
  E2E=()
  STEP=()
fi
# shellcheck disable=SC2086  # E2E_ARGS is a list of flags
bench "2. end to end: notes' loop vs 03_cifar_train/train.py" 300 \
  $PY benchmarks/end_to_end_gpu.py --device "$DEVICE" "${E2E[@]}" $E2E_ARGS
bench "3. model step time vs torchvision" 180 $PY benchmarks/model_step_time.py --device "$DEVICE" "${STEP[@]}"

echo
echo "## summary ($((SECONDS - START)) s in all; target < 300 s)"
cat "$WORK/summary"
exit $FAILED
