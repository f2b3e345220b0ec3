#!/bin/bash
# Every device bench, once, for a session that holds an accelerator (bench/README.md keeps the
# figures). Without one each bench says "no accelerator found, falling back to CPU" and runs there;
# `bench/device.sh smoke` runs them at test size (the CPU check before spending device time).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
if [ "${1:-}" = smoke ]; then
  TRAIN="--models=tiny --device_batch=2 --steps=1"; TINY=--tiny; EMBED="--model=tiny --files=16"
  ENCODE="--batch_sizes=2 --min_seconds=0.3"; EVAL="--clips=8 --batch_size=4 --repeats=1"
else
  TRAIN="--models=full --device_batch=${BATCH:-128} --steps=10"; TINY=; EMBED="--model=full --files=0 --batch_size=128"
  ENCODE="--batch_sizes=1,32,128 --dtype=bfloat16"; EVAL="--clips=512 --batch_size=128"
fi
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%F)"
$PY bench/train_step.py --device $TRAIN
$PY bench/encode_throughput.py --device $TINY $ENCODE
$PY bench/eval_throughput.py --device $TINY $EVAL
$PY bench/embed_throughput.py --device $EMBED
