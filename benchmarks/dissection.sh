#!/usr/bin/env bash
# GAN Dissection on a DCGAN trained on shapes (docs/benchmarks.md, "GAN Dissection").
#   WORKDIR=runs/analysis/shapes OUT=runs/dissect bash benchmarks/dissection.sh
# The workdir: python -m dcgan_keras.binaries.train --dataset=shapes --channels=3 --epochs=2 \
#   --image_size=32 --base_width=64 --workdir=runs/analysis/shapes   (~8 min on 2 CPU cores)
# Runs: every layer with the defaults (the best concept of the best layer, k=20); then on
# block1_relu each object with k=20; then k=5 and 10 on the default's layer and concept.
set -euo pipefail
PYTHON=${PYTHON:-python}
WORKDIR=${WORKDIR:-runs/analysis/shapes}
OUT=${OUT:-runs/dissect}
mkdir -p "$OUT"
# The summary line on stdout; progress and errors in $OUT/log.txt (a failed run stops here).
analyze() { "$PYTHON" -m dcgan_keras.binaries.analyze dissect --workdir="$WORKDIR" "$@" 2>>"$OUT/log.txt"; }
line=$(analyze --out_dir="$OUT/all"); echo "all layers: $line"
for concept in circle square triangle; do
  line=$(analyze --out_dir="$OUT/block1_$concept" --layers=block1_relu --concept=$concept)
  echo "block1_relu $concept: $line"
done
for k in 5 10; do
  line=$(analyze --out_dir="$OUT/block2_circle_k$k" --layers=block2_relu --concept=circle --num_units=$k)
  echo "block2_relu circle k=$k: $line"
done
