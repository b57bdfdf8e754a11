#!/bin/bash
# Issue 20's GPU work left, as one queue in priority order: each call of a lent GPU machine runs
#
#   CALL=575 bash experiments/transfer_issue20/issue20_queue.sh      # timeout_s 600
#
# and gets as far as its time allows; the next call, after the last one's new_runs.tgz is extracted in the
# repository root and committed, sends the same line and goes on where it stopped (every spec is a resumable
# sweep, and run_specs.sh skips a spec whose runs are all stored after a dry run of a few seconds). CALL: the
# seconds the call may use, less ~25 s for the machine's start and the final pack. Writes into $OUT (default
# ./device-out): what run_specs.sh writes (gpu.txt, a log per spec, new_runs.tgz) and, once, the CUDA-only
# integration tests' log (cuda_backends_pytest.log: after_call.sh keeps it next to this script once it ends
# in rc=0; while it is there the tests are not run again) and, on an H200, devcheck.txt (device_check.py's comparison).
#
# The queue (see experiments/README.md, `lrfn_onepass2000_baseline/` "Next"):
#   1. item 2's `fn` multiplier sweeps finished: odd powers of both rules, `baseline` down to 2^-10 and round its
#      high edge, `mup`'s edges (P, F, W, BB, BM as there);
#   2. the device check, six H100 runs repeated on an H200 (skipped on an H100, where it measures nothing new);
#   3. item 6: `mup` beside `control-mup` at 4000 steps, 128 and 1024 (mup_onepass4000/);
#   4. the init scale of the generator, `--sweep init_fn`, for each rule (initfn_onepass2000_<rule>/);
#   5. `fntuned`: each rule at its better fixed multiplier, the global η swept in the headline folder.
# MARGIN (a spec's second field) keeps time for one run of a kind its folder has not timed yet, which
# --time-budget cannot foresee: ~100 s at 2000 steps, ~200 s at 4000 (an mHC run at d = 1024, 4 in turns).
set -u
START=$SECONDS
OUT=${OUT:-device-out}
mkdir -p "$OUT"
CALL=${CALL:-575}
HERE=experiments/transfer_issue20
if [ ! -e "$HERE/cuda_backends_pytest.log" ]; then
  PYTHONPATH=src timeout 150 python -m pytest -q -p no:cacheprovider tests/integration/test_transfer_backends.py \
    > "$OUT/cuda_backends_pytest.log" 2>&1
  echo "rc=$?" >> "$OUT/cuda_backends_pytest.log"
fi
P=/opt/torch/.venv/lib/python3.12/site-packages
F="--corpus $P --corpus-mb 48"
W="--widths 128,256,512,1024"
# each rule's body η* per width, the per-seed optima of transfer_onepass2000/ (fixed here: that folder gains runs)
ETA_BASELINE="--base-lr 128:2^-6.44,256:2^-7.03,512:2^-7.20,1024:2^-7.43"
ETA_MUP="--base-lr 128:2^-6.24,256:2^-6.41,512:2^-6.57,1024:2^-6.59"
BB="--configs baseline $F $ETA_BASELINE --out experiments/lrfn_onepass2000_baseline"
BM="--configs mup $F $ETA_MUP --out experiments/lrfn_onepass2000_mup"
INIT="--sweep init_fn --grid 2^-8,2^-6,2^-4,2^-2,2^0,2^2,2^4,2^6,2^8 $W"
DC="devcheck|100|100|4|--configs mup $F --widths 256,1024 --seeds 1 --grid 2^-7,2^-6,2^-5 --out experiments/device_check_onepass2000"
nvidia-smi -L | grep -q H200 || DC="devcheck|0|0|4|skipped-on-H100"
specs=(
  "oddmup|20|120|4|$BM --sweep lr_fn --grid 2^1,2^3,2^5 $W"
  "oddbase|20|120|4|$BB --sweep lr_fn --grid 2^1,2^3,2^5 $W"
  "lowbase|20|400|4|$BB --sweep lr_fn --grid 2^-10,2^-8,2^-3,2^-1 $W"
  "$DC"
  "edgemup|20|400|4|$BM --sweep lr_fn --grid 2^-3,2^-1,2^7 $W"
  "h4000|200|560|4|--configs control-mup,mup --widths 128,1024 --lr-min 2^-9 --lr-max 2^-4 --lr-points 6 $F --steps 4000 --out experiments/mup_onepass4000"
  "initmup|100|560|4|--configs mup $F $ETA_MUP $INIT --out experiments/initfn_onepass2000_mup"
  "initbase|100|560|4|--configs baseline $F $ETA_BASELINE $INIT --out experiments/initfn_onepass2000_baseline"
  "fntuned|100|560|4|$F --config mup-fn4=mup:mup-fn4:from=mup,lr_fn=4/d --config baseline-fn16=mup:baseline-fn16:from=baseline,lr_fn=1/16 --grid 2^-9,2^-8,2^-7,2^-6,2^-5,2^-4 $W"
)
OUT=$OUT DIR=experiments/transfer_onepass2000 STEPS=2000 TOTAL=$((CALL - (SECONDS - START))) \
  bash "$HERE/run_specs.sh" "${specs[@]}"
if nvidia-smi -L | grep -q H200 && [ -d experiments/device_check_onepass2000/runs ]; then
  PYTHONPATH=src python "$HERE/device_check.py" experiments/device_check_onepass2000 experiments/transfer_onepass2000 \
    > "$OUT/devcheck.txt" 2>&1
fi
cat "$OUT/gpu.txt"; tail -n 2 "$OUT"/*.log
