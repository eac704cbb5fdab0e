#!/usr/bin/env bash
# The GPU check: one script, under 5 minutes on one GPU, one table at the end.
#
#   bash benchmarks/gpu_check.sh            # PYTHON=... for another interpreter with TF
#   PEER_PYTHON=python3 bash benchmarks/gpu_check.sh   # the interpreter that has PyTorch
#
# 1. the train binary (DCGAN.fit) with the defaults a GPU gets (--mixed_precision=auto ->
#    float16 with loss scaling, --jit_compile=auto -> XLA per replica), 300 steps at 64x64,
#    batch 128, on a folder of 2048 generated images (no download);
# 2. the same with --strategy=mirrored (all local GPUs), 100 steps;
# 3. an export of run 1, loaded back with tf.saved_model.load and sampled;
# 4. the throughput benchmark (our fit loop, f32 / f16 / f16+xla) next to the PyTorch
#    DCGAN peer on the same GPU (benchmarks/peer_torch_cuda.py, float32 and AMP).
# Nothing else in the project needs a GPU; this script is run by hand when one is lent.
# GPU_CHECK_DRY_RUN=1 runs the same steps on the CPU with a few steps each (the PyTorch
# CUDA peer then fails): a check of the script itself, not a measurement.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PEER_PY=${PEER_PYTHON:-$PY}
W=$(mktemp -d /tmp/gpu_check.XXXXXX)
trap 'rm -rf "$W"' EXIT
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }
elapsed() { echo $(( $(date +%s) - $1 )); }

DRY=${GPU_CHECK_DRY_RUN:-0}
S1=300 S2=100 WS=50 PS=200
[ "$DRY" = 1 ] && S1=6 S2=4 WS=2 PS=5
if [ "$DRY" != 1 ] && ! "$PY" -c "import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)"; then
  echo "gpu_check: TensorFlow ($PY) sees no GPU; run it on a machine with one (PYTHON=<python with tensorflow[and-cuda]>)" >&2
  exit 1
fi
"$PY" -c "import tensorflow as tf; g = tf.config.list_physical_devices('GPU'); print('GPU:', tf.config.experimental.get_device_details(g[0]).get('device_name') if g else 'none (dry run)', '| TF', tf.__version__)"
"$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); import throughput; throughput.make_image_folder('$W/images', 2048, 64)" || exit 1

train() {  # name workdir steps extra-flags...
  local name=$1 dir=$2 steps=$3; shift 3
  local t0; t0=$(date +%s)
  timeout 240 "$PY" -m dcgan_keras.binaries.train --dataset=folder --data_dir="$W/images" \
    --image_size=64 --channels=3 --batch_size=128 --max_steps="$steps" --log_every=50 \
    --checkpoint_every="$steps" --workdir="$dir" "$@" > "$dir.log" 2>&1
  local rc=$? secs; secs=$(elapsed "$t0")
  local ips; ips=$(grep -o '[0-9.]* img/s' "$dir.log" | tail -1)
  local how; how=$(grep -o 'mixed precision: [^,]*, XLA: [A-Za-z]*' "$dir.log" | head -1)
  if [ $rc -eq 0 ] && grep -q "trained to step $steps" "$dir.log"; then
    row "$name" ok "$secs" "$how; last window $ips"
  else
    row "$name" "FAILED ($rc)" "$secs" "$(grep -v '^\s*$' "$dir.log" | tail -1 | cut -c1-150)"
  fi
}

train "train: fit, GPU defaults" "$W/run" $S1
train "train: --strategy=mirrored" "$W/mirrored" $S2 --strategy=mirrored

t0=$(date +%s)
if timeout 120 "$PY" -m dcgan_keras.binaries.export --workdir="$W/run" --export_dir="$W/export" > "$W/export.log" 2>&1 &&
   out=$("$PY" - "$W/export" <<'PYEOF' 2>>"$W/export.log"
import sys, tensorflow as tf
g = tf.saved_model.load(sys.argv[1] + "/generator")
images = g.signatures["serving_default"](z=tf.random.normal([16, 100]))
image = list(images.values())[0]
print(f"SavedModel G(z): {image.shape.as_list()} in [{float(tf.reduce_min(image)):.2f}, {float(tf.reduce_max(image)):.2f}]")
PYEOF
); then
  row "export + tf.saved_model.load" ok "$(elapsed "$t0")" "$out"
else
  row "export + tf.saved_model.load" FAILED "$(elapsed "$t0")" "$(tail -1 "$W/export.log" | cut -c1-150)"
fi

t0=$(date +%s)
timeout 240 "$PY" benchmarks/throughput.py --sizes=64 --batches=128 --variants=f32,f16,f16+xla \
  --peers= --pipelines= --windows=3 --window_steps=$WS --out="$W/throughput.json" > "$W/throughput.log" 2>&1
if [ -s "$W/throughput.json" ]; then
  while IFS= read -r line; do ROWS+=("$line"); done < <("$PY" - "$W/throughput.json" $WS <<'PYEOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    rate = f"{r['rate']:.0f} img/s" if r.get("rate") else "FAILED"
    print(f"| throughput: ours {r['name'].split()[-1]} 64x64 b128 | {'ok' if r.get('rate') else 'FAILED'} | - | {rate} (median of 3 windows of {sys.argv[2]} steps) |")
PYEOF
)
else
  row "throughput: ours" FAILED "$(elapsed "$t0")" "$(tail -1 "$W/throughput.log" | cut -c1-150)"
fi
for amp in 0 1; do
  t0=$(date +%s)
  out=$(RES=64 BATCH=128 STEPS=$PS AMP=$amp timeout 120 "$PEER_PY" benchmarks/peer_torch_cuda.py 2>&1 | tail -1)
  name="throughput: PyTorch peer $([ $amp = 1 ] && echo AMP-f16 || echo f32) 64x64 b128"
  case "$out" in *img_per_s=*) row "$name" ok "$(elapsed "$t0")" "${out##*img_per_s=} img/s ($PS steps)";;
                 *) row "$name" "FAILED" "$(elapsed "$t0")" "$(echo "$out" | cut -c1-150)";; esac
done

echo
echo "gpu_check $(date -u +%Y-%m-%d) on $(hostname)"
echo "| check | result | seconds | detail |"
echo "|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
for r in "${ROWS[@]}"; do case "$r" in *FAILED*) exit 1;; esac; done
