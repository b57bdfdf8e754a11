set -u
export PYTHONPATH=$PWD/src MHC_MUP_FIGURE_WORKERS=0
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/gpu.txt
N=""; python -c "import xdist" 2>/dev/null && N="-n 4"
python -m pytest -q -p no:cacheprovider $N > $OUT/pytest_cuda_suite.log 2>&1
python -m mhc_mup transfer --configs mup,baseline --widths 128,512 --sweep lr_fn --grid 2^-4,2^0,2^4 --base-lr 2^-7 --seeds 1 --steps 200 --out /tmp/lrfn > $OUT/transfer_lr_fn_graphs.log 2>&1
python - >> $OUT/transfer_lr_fn_graphs.log <<'PY'
import json, glob
for p in sorted(glob.glob("/tmp/lrfn/runs/*/*/*/*.json")):
    r = json.load(open(p)); print(r["config"], r["width"], r.get("hyper"), r.get("value"), r["step"], r["cuda_graph_fallback"] or "-", round(r["final_val_loss"], 4), round(r["train_seconds"], 2))
PY
tail -3 $OUT/pytest_cuda_suite.log; tail -14 $OUT/transfer_lr_fn_graphs.log
