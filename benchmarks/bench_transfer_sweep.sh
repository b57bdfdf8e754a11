#!/usr/bin/env bash
# One GPU: the same transfer grid run the eager way (--cuda-graphs off, one run at a time) and the new ways
# (captured steps; then 2 and 4 runs sharing the GPU), in one call. Writes OUT/sweep_<mode>.log, the wall time of
# each command, and OUT/sweep_costs.json (per mode: wall seconds, runs per GPU-hour, and per width the mean
# seconds, train_seconds and stage_seconds of a run, and how its steps ran).
#   bash benchmarks/bench_transfer_sweep.sh OUT [extra transfer flags...]
#   MODES="eager graph" bash benchmarks/bench_transfer_sweep.sh OUT     # only these modes (also: compiled_rpg4)
set -euo pipefail
out=${1:?usage: bench_transfer_sweep.sh OUT [transfer flags]}; shift
mkdir -p "$out"
rm -f "$out/sweep_walls.txt"  # this call's modes only
grid=(--configs mup,control-mup --widths 128,256,512,1024 --lrs 2^-9,2^-7,2^-5 --seeds 1 --steps 300 --quiet "$@")
declare -A modes=([eager]="--cuda-graphs off" [graph]="--cuda-graphs auto" [graph_rpg2]="--cuda-graphs auto --runs-per-gpu 2" [graph_rpg4]="--cuda-graphs auto --runs-per-gpu 4" [compiled_rpg4]="--cuda-graphs auto --runs-per-gpu 4 --compile")
for mode in ${MODES:-eager graph graph_rpg2 graph_rpg4}; do
  rm -rf "$out/sweep_$mode"
  start=$(date +%s.%N)
  rc=0
  # shellcheck disable=SC2086
  python -m mhc_mup transfer "${grid[@]}" ${modes[$mode]} --out "$out/sweep_$mode" > "$out/sweep_$mode.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then  # keep going: one failed mode must not lose the others' summary
    echo "$mode failed (exit $rc); its log: $out/sweep_$mode.log" >&2
    continue
  fi
  echo "$mode $(python -c "print(round($end - $start, 2))")" >> "$out/sweep_walls.txt"
done
python - "$out" <<'PY'
import json, sys, statistics
from pathlib import Path
from mhc_mup.training.transfer.store import read_json
out = Path(sys.argv[1])
walls = dict(line.split() for line in (out / "sweep_walls.txt").read_text().splitlines())
summary = {}
for mode, wall in walls.items():
    runs = [read_json(p) for p in (out / f"sweep_{mode}").glob("runs/*/*/*/*.json*")]  # .json.gz (.json before)
    by_width = {}
    for r in runs:
        by_width.setdefault((r["config"], r["width"]), []).append(r)
    summary[mode] = {
        "wall_s": float(wall), "runs": len(runs), "runs_per_gpu_hour": 3600 * len(runs) / float(wall),
        "steps": sorted({r.get("step", "eager") for r in runs}),
        "fallbacks": sorted({r.get("cuda_graph_fallback", "") for r in runs} - {""}),
        "per_config_width": {f"{c} d={w}": {"seconds": statistics.mean(r["seconds"] for r in rs),
                                            "train_seconds": statistics.mean(r["train_seconds"] for r in rs),
                                            "stage_seconds": {k: statistics.mean(r["stage_seconds"][k] for r in rs)
                                                              for k in rs[0].get("stage_seconds", {})},
                                            "final_val_loss": [r["final_val_loss"] for r in sorted(rs, key=lambda r: r["lr"])]}
                             for (c, w), rs in sorted(by_width.items())},
    }
(out / "sweep_costs.json").write_text(json.dumps(summary, indent=2) + "\n")
for mode, s in summary.items():
    print(f"{mode:12s} wall {s['wall_s']:7.1f} s  runs {s['runs']}  runs/GPU-hour {s['runs_per_gpu_hour']:7.0f}  steps {s['steps']}")
    for key, row in s["per_config_width"].items():
        stages = "  ".join(f"{k} {v:.3f}" for k, v in row["stage_seconds"].items())
        print(f"    {key:18s} run {row['seconds']:.3f} s: {stages}")
PY
