#!/bin/bash
# How this folder's GPU runs were launched since the eighth session: one call of a lent GPU machine runs several
# `mhc-mup transfer` commands in order, each capped by the time the call has left, and packs the runs it wrote.
#
#   TOTAL=550 bash experiments/transfer_issue20/run_specs.sh "NAME|MARGIN|CAP|RPG|transfer args" ...
#
# Each spec: NAME (its log, NAME.log), MARGIN (seconds to keep for what follows it), CAP (its own most seconds),
# RPG (--runs-per-gpu), then the command's own arguments, which win over the folder's settings below (a spec may
# give another --out and --steps, for a sweep of its own). --time-budget starts no run that the folder's finished
# runs of its configuration and width say would end after it (since 12th-session sources); a run of a kind the
# folder has not timed yet can still overrun by its own length, so the last spec's MARGIN covers one such run: at
# 2000 steps an mHC run at d = 1024 takes up to 95 s with 4 in turns, a control run up to 45 s. The call's own
# timeout must cover TOTAL and ~20 s of start. Writes into $OUT
# (default ./device-out): gpu.txt, NAME.log per spec and new_runs.tgz (every run record and sweep.json this call
# wrote under experiments/), to extract in the repository root before the next call (a folder's sweep.json from
# a call that did not see the last one's runs lists only its own grids). new_runs.tgz is rewritten every 30 s and
# after each spec, so a call killed at its timeout still returns the runs it finished. DIR and STEPS (default this
# folder and 1000) set the folder and the steps a spec gets unless it gives its own, e.g.
# DIR=experiments/transfer_onepass2000 STEPS=2000 for the headline at 2000 steps. A spec whose runs are all stored
# is skipped after a dry run (since the twenty-first session), so a queue of specs can be sent again as it is.
# The lent machine takes the working tree only while it (tracked and untracked-not-ignored files) stays under
# 64 MiB; 27 MB on 2026-12-07 after 1980 runs, their records gzip-compressed since then (10 kB a 2000-step run):
# `git ls-files -co --exclude-standard -z | du -cb --files0-from=-`.
set -u
export PYTHONPATH=src MHC_MUP_FIGURE_WORKERS=0 PYTHONUNBUFFERED=1
OUT=${OUT:-device-out}
mkdir -p "$OUT"
TOTAL=${TOTAL:-540}
T0=$(date +%s)
MARK=$(mktemp); touch "$MARK"; sleep 1
DIR=${DIR:-experiments/transfer_issue20}
STEPS=${STEPS:-1000}
left() { echo $(( TOTAL - ($(date +%s) - T0) )); }
late() {  # sets the spec's budget (what is left less its margin, at most its cap); true, and logged, under 20 s
  budget=$(( $(left) - margin )); [ "$budget" -gt "$cap" ] && budget=$cap
  [ "$budget" -lt 20 ] && echo "skipped: budget $budget s" >> "$log"
}
pack() {  # every run record and sweep.json written since MARK, as a whole archive (temp file, then rename)
  find experiments \( -name '*.json' -o -name '*.json.gz' \) -newer "$MARK" > "$MARK.list.$1"
  tar czf "$OUT/new_runs.tgz.$1" -T "$MARK.list.$1" 2>/dev/null && mv "$OUT/new_runs.tgz.$1" "$OUT/new_runs.tgz"
}
( n=0; until [ -e "$MARK.stop" ]; do sleep 2; n=$((n + 2)); [ $((n % 30)) -eq 0 ] && pack loop; done ) &
PACKER=$!
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python -c "import torch, triton; print(torch.__version__, triton.__version__)"
  # the device's copy of .git can lag the tree it was sent (its HEAD read 4446f6f for a tree at 7f172e3): the
  # sources' own hash is what identifies the code (the same command on a checkout prints the same line)
  echo "git HEAD (may lag the tree) $(git rev-parse HEAD 2>&1)"
  echo "src sha256 $(find src -name '*.py' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)"
  date -u; } > "$OUT/gpu.txt" 2>&1
# the folder's settings; the tables written here are thrown away (--bootstrap 20): they are rewritten on a CPU
COMMON="--steps $STEPS --batch-size 32 --seq-len 256 --eval-batches 16 --eval-every 0 --base-width 128 --seeds 3
        --compile --device cuda --bootstrap 20 --out $DIR"
for spec in "$@"; do
  IFS='|' read -r name margin cap rpg args <<< "$spec"
  log="$OUT/$name.log"
  late && continue
  # a spec whose runs are all stored is skipped: its dry run (a few seconds) says "0 of N runs to train"
  # shellcheck disable=SC2086
  if python -m mhc_mup transfer $COMMON $args --dry-run 2>&1 | grep -q "^0 of [0-9]* runs to train"; then
    echo "$(date -u +%T) nothing to train: $args" >> "$log"; continue
  fi
  late && continue  # again: the dry run's seconds count against the budget
  echo "$(date -u +%T) budget $budget s, rpg $rpg: $args" >> "$log"
  # shellcheck disable=SC2086  # COMMON and args are word lists
  python -m mhc_mup transfer $COMMON --runs-per-gpu "$rpg" --time-budget "$budget" $args >> "$log" 2>&1
  rc=$?
  echo "$(date -u +%T) rc=$rc left $(left) s" >> "$log"
  pack spec
done
touch "$MARK.stop"; wait "$PACKER"  # its pack in flight, if any, ends before the last one
pack last
echo "$(wc -l < "$MARK.list.last") run records and sweep.json files written" >> "$OUT/gpu.txt"
