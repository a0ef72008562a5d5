#!/usr/bin/env bash
# Times one stage of `make test` (.ci/run prints the table at its end):
#   scripts/stage.sh NAME COMMAND [ARG...]   runs COMMAND, appends "NAME<TAB>seconds<TAB>rc<TAB>cpu" to the log
#                                            (cpu: how busy the machine's CPUs were meanwhile, in %, from
#                                            /proc/stat: a stage near 100 % only gets faster with less work)
#   scripts/stage.sh --table                 prints the log as a table (and the total)
# With GPUFORGE_STAGE_PREFIX set (make test runs stages side by side), every output line of
# COMMAND starts with "[NAME] ", so that interleaved stages stay readable.
# The log is $GPUFORGE_STAGE_LOG (default artifacts/stages.tsv); it is appended to, never truncated
# here: .ci/run starts a fresh one.
set -uo pipefail
log=${GPUFORGE_STAGE_LOG:-artifacts/stages.tsv}
if [[ ${1:-} == --table ]]; then
  [[ -s $log ]] || { echo "stages: none recorded in $log"; exit 0; }
  awk -F'\t' '
    { secs[NR] = $2; name[NR] = $1; rc[NR] = $3; cpu[NR] = ($4 == "" ? "-" : $4); total += $2 }
    END {
      printf "%-28s %9s %7s %5s  %s\n", "stage", "seconds", "min", "cpu%", "result"
      for (i = 1; i <= NR; i++)
        printf "%-28s %9d %7.1f %5s  %s\n", name[i], secs[i], secs[i] / 60, cpu[i], (rc[i] == 0 ? "ok" : "FAILED (rc " rc[i] ")")
      printf "%-28s %9d %7.1f\n", "sum of stages", total, total / 60
    }' "$log"
  exit 0
fi
# busy and total jiffies of all CPUs (idle and iowait count as not busy); GPUFORGE_STAGE_PROC_STAT: the
# file to read instead of /proc/stat (tests)
cpu_jiffies() {
  awk '/^cpu /{t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit}' \
    "${GPUFORGE_STAGE_PROC_STAT:-/proc/stat}" 2>/dev/null
}
name=$1
shift
mkdir -p "$(dirname "$log")"
start=$(date +%s)
read -r busy0 total0 < <(cpu_jiffies || echo "0 0")
if [[ -n ${GPUFORGE_STAGE_PREFIX:-} ]]; then
  "$@" 2>&1 | sed -u "s/^/[$name] /"
  rc=${PIPESTATUS[0]}
else
  "$@"
  rc=$?
fi
read -r busy1 total1 < <(cpu_jiffies || echo "0 0")
cpu=-
(( total1 > total0 )) && cpu=$(( 100 * (busy1 - busy0) / (total1 - total0) ))
printf '%s\t%d\t%d\t%s\n' "$name" "$(( $(date +%s) - start ))" "$rc" "$cpu" >> "$log"
exit $rc
