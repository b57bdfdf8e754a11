#!/usr/bin/env bash
# Issue 20's d = 1024 failure, variant by variant (one GPU, about 6 min at worst): every attention backend at a
# transfer sweep's shapes, then `mup` at d = 1024 (4 learning rates, 300 steps of 32 x 256 bytes) trained through
# `mhc-mup transfer`'s own path with 4 runs taking turns, per variant (cuDNN attention or not, compiled or not), and
# once one at a time. Each variant runs in its own process under a timeout that aborts it with a Python stack
# (a hung run would stop the rest); nvidia-smi logs utilisation and power meanwhile.
#   OUT=benchmarks/results bash benchmarks/bench_attention_turns.sh
set -u
OUT=${OUT:-benchmarks/results}
TAG=${TAG:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | awk '{print tolower($2)}')}
export PYTHONPATH=$PWD/src MHC_MUP_FIGURE_WORKERS=0 PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
LOG=$OUT/bench_attention_train_d1024_$TAG.log
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 5 \
    > "$OUT/bench_attention_train_d1024_${TAG}_smi.csv" 2>&1 &
SMI=$!
timeout -s ABRT 75 python benchmarks/bench_attention.py --widths 256,512,1024,2048 --repeats 10 \
    --json "$OUT/bench_attention_$TAG.json" > "$OUT/bench_attention_$TAG.log" 2>&1
train() {  # variant, runs in turns, json
  timeout -s ABRT 75 python benchmarks/bench_attention.py --widths 1024 --repeats 2 --train-width 1024 \
      --train-lr 2^-10 --train-steps 300 --train-variants "$1" --train-in-turns "$2" --json "$3" 2>&1 \
      | grep -v "^{'width'" | tail -25 | tee -a "$LOG"
}
: > "$LOG"
for v in default no-cudnn compiled compiled-no-cudnn; do
  echo "== $v in turns" | tee -a "$LOG"
  train "$v" 4 "$OUT/bench_attention_train_d1024_${v}_in_turns_$TAG.json"
done
echo "== default one at a time" | tee -a "$LOG"
train default 1 "$OUT/bench_attention_train_d1024_one_at_a_time_$TAG.json"
kill $SMI
