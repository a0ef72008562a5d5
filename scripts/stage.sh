#!/usr/bin/env bash
# Times one stage of `make test` (.ci/run prints the table at its end):
#   scripts/stage.sh NAME COMMAND [ARG...]   runs COMMAND, appends "NAME<TAB>seconds<TAB>rc" to the log
#   scripts/stage.sh --table                 prints the log as a table (and the total)
# The log is $GPUFORGE_STAGE_LOG (default artifacts/stages.tsv); it is appended to, never truncated
# here: .ci/run starts a fresh one.
set -uo pipefail
log=${GPUFORGE_STAGE_LOG:-artifacts/stages.tsv}
if [[ ${1:-} == --table ]]; then
  [[ -s $log ]] || { echo "stages: none recorded in $log"; exit 0; }
  awk -F'\t' '
    { secs[NR] = $2; name[NR] = $1; rc[NR] = $3; total += $2 }
    END {
      printf "%-28s %9s %7s  %s\n", "stage", "seconds", "min", "result"
      for (i = 1; i <= NR; i++)
        printf "%-28s %9d %7.1f  %s\n", name[i], secs[i], secs[i] / 60, (rc[i] == 0 ? "ok" : "FAILED (rc " rc[i] ")")
      printf "%-28s %9d %7.1f\n", "sum of stages", total, total / 60
    }' "$log"
  exit 0
fi
name=$1
shift
mkdir -p "$(dirname "$log")"
start=$(date +%s)
"$@"
rc=$?
printf '%s\t%d\t%d\n' "$name" "$(( $(date +%s) - start ))" "$rc" >> "$log"
exit $rc
