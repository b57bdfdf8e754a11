#!/bin/bash
# What a session does on its CPU after each call of issue20_queue.sh, before the next call:
#
#   bash experiments/transfer_issue20/after_call.sh FILES_AT
#
# FILES_AT: the folder the device tool put the call's $OUT in. Extracts its new_runs.tgz in the repository root
# (every run record and sweep.json the call wrote), keeps the call's logs under calls/<UTC time of the call's
# gpu.txt>/ beside this script (what ran, on which GPU and sources, for how long: the cost the experiments README
# reports), keeps the CUDA integration tests' log beside this script once it ends in rc=0 (else only under calls/,
# and the next call runs them again) and the device check's comparison where the call wrote them, then
# re-reads every folder that got runs (`--report-only`, about 10 s a folder) and rewrites the two tallies that read
# them (cost_tally.txt; rules_at_best_lrfn.txt). It commits nothing: read the reports, then commit.
set -eu
AT=${1:-}
HERE=experiments/transfer_issue20
[ -f "$AT/new_runs.tgz" ] || { echo "after_call.sh: no new_runs.tgz in '$AT' (give the call's files_at folder)" >&2; exit 2; }
export PYTHONPATH=src MHC_MUP_FIGURE_WORKERS=0
stamp=$(grep -m1 -E '^[A-Z][a-z]{2} [A-Z][a-z]{2} ' "$AT/gpu.txt" 2>/dev/null | xargs -r -I{} date -u -d {} +%Y%m%dT%H%M || true)
calls="$HERE/calls/${stamp:-$(date -u +%Y%m%dT%H%M)}"
mkdir -p "$calls"
cp "$AT"/gpu.txt "$AT"/*.log "$calls"/ 2>/dev/null || true
if [ -f "$AT/cuda_backends_pytest.log" ]; then  # kept beside the script (the queue then skips the tests) once passed
  if [ "$(tail -n 1 "$AT/cuda_backends_pytest.log")" = "rc=0" ]; then
    mv "$calls/cuda_backends_pytest.log" "$HERE/cuda_backends_pytest.log"
  else
    echo "CUDA tests did not pass ($(tail -n 1 "$AT/cuda_backends_pytest.log")): read $calls/cuda_backends_pytest.log"
  fi
fi
[ -f "$AT/devcheck.txt" ] && cp "$AT/devcheck.txt" "$HERE/device_check_onepass2000.txt"
tar xzf "$AT/new_runs.tgz"
folders=$(tar tzf "$AT/new_runs.tgz" | cut -d/ -f1-2 | sort -u)
echo "$(tar tzf "$AT/new_runs.tgz" | grep -c 'runs/') run records into: ${folders:-nothing}"
for f in $folders; do
  python -m mhc_mup transfer --report-only --out "$f" > /dev/null
  echo "re-read $f"
done
python "$HERE/cost_tally.py" > "$HERE/cost_tally.txt"
python "$HERE/rules_at_best.py" experiments/lrfn_onepass2000_baseline experiments/lrfn_onepass2000_mup \
  > "$HERE/rules_at_best_lrfn.txt"
echo "logs in $calls; now read the changed reports (git status) and commit"
