#!/usr/bin/env bash
# Tokens/s of `mhc-mup transfer` runs on one GPU: the reference ops against the fused kernels, fp32 against
# bf16 residual streams, and the plain-residual control, at one width (eager training, as transfer runs).
# Usage: bash benchmarks/bench_transfer_kernels.sh OUT_DIR [WIDTH]   (needs a CUDA GPU)
set -euo pipefail
out=${1:?usage: bench_transfer_kernels.sh OUT_DIR [WIDTH]}
width=${2:-1024}
common=(--widths "$width" --lrs 2^-10,2^-9,2^-8 --seeds 1 --steps 100 --batch-size 16 --seq-len 256 --depth 4
        --heads 16 --eval-every 0 --eval-batches 2 --bootstrap 50 --device cuda --quiet)
run() {  # name, then transfer flags
  local name=$1; shift
  python -m mhc_mup transfer "${common[@]}" "$@" --out "$out/$name"
  python - "$out/$name/transfer.csv" "$name" <<'PY'
import sys, pandas as pd
runs = pd.read_csv(sys.argv[1])
each = ", ".join(f"{v:,.0f}" for v in runs.tokens_per_s)
print(f"{sys.argv[2]:16s} {runs.mhc_kernels.iloc[0]:10s} {runs.tokens_per_s.median():>9,.0f} tokens/s, median of "
      f"{len(runs)} runs ({each}); {runs.seconds.sum():.1f} s in all")
PY
}
run control --configs control-mup
run reference-fp32 --configs mup --kernels reference
run fused-fp32 --configs mup --kernels triton
run reference-bf16 --configs mup --kernels reference --stream-dtype bfloat16
run fused-bf16 --configs mup --kernels triton --stream-dtype bfloat16
