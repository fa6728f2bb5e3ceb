#!/usr/bin/env bash
# The quick benchmark on the single-node HTCondor pool of .ci/setup-htcondor.sh, through
# the HTCondor profile, by hand. CI runs the same with every check as the tests marked
# `htcondor` (tests/test_cluster.py); this script is for watching it. Run as root, after
# `make install`:
#
#   tests/cluster/run_htcondor.sh [CHROOT_DIR]
#
# The workflow is submitted by the pool's unprivileged user from a work directory in that
# user's home inside the chroot, with the project's venv (bind-mounted at its own path).
# Exit status 0 means the report was written and every job the schedd ran finished with 0;
# the table lists each job's resources as the schedd recorded them.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
export HEPGENBENCH_HTCONDOR_CHROOT=${1:-${HEPGENBENCH_HTCONDOR_CHROOT:-/var/cache/hepgenbench/htcondor-trixie}}
CHROOT=$HEPGENBENCH_HTCONDOR_CHROOT
USER_NAME=hgbench
VENV=$ROOT_DIR/.venv

[ "$(id -u)" = 0 ] || { echo "run_htcondor.sh: run as root" >&2; exit 1; }
[ -x "$VENV/bin/snakemake" ] || { echo "run_htcondor.sh: no $VENV/bin/snakemake; run make install first" >&2; exit 1; }
"$ROOT_DIR/.ci/setup-htcondor.sh"

WORK=/home/$USER_NAME/run_htcondor/wf
rm -rf "$CHROOT$WORK"
mkdir -p "$CHROOT$WORK"
cp -r "$ROOT_DIR/Snakefile" "$ROOT_DIR/workflow" "$ROOT_DIR/config" "$CHROOT$WORK/"
chroot "$CHROOT" chown -R "$USER_NAME:" "$(dirname "$WORK")"

start=$(date +%s)
set +e  # report the outcome below rather than stop at a failed run
chroot "$CHROOT" runuser -u "$USER_NAME" -- env -i HOME="/home/$USER_NAME" \
  PATH="$VENV/bin:/usr/bin:/bin" CONDOR_CONFIG=/etc/condor/condor_config \
  sh -c "cd $WORK && snakemake --profile workflow/profiles/htcondor --configfile config/quick.yaml" \
  2>&1 | tee "$CHROOT$WORK.log"
status=${PIPESTATUS[0]}
set -e
echo "run_htcondor.sh: snakemake exited $status after $(( $(date +%s) - start )) s"
echo "jobs per (rule, request_cpus, request_memory MB, exit code), from condor_history:"
history=$(chroot "$CHROOT" runuser -u "$USER_NAME" -- condor_history -constraint "Iwd == \"$WORK\"" \
  -af JobBatchName RequestCpus RequestMemory ExitCode)
printf '%s\n' "$history" | sed 's/-[0-9]* / /' | sort | uniq -c
[ "$status" = 0 ] && [ -s "$CHROOT$WORK/results/report/metrics.csv" ] && [ -n "$history" ] \
  && ! printf '%s\n' "$history" | awk '$4 != 0 { bad = 1 } END { exit !bad }'
