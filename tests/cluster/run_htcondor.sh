#!/usr/bin/env bash
# The quick benchmark on a real single-node HTCondor pool, through the HTCondor profile.
# Not part of CI (Debian 12 has no HTCondor; this needs a Debian 13 chroot, ~3 min to build
# and a network mirror). Run as root on Debian 12:
#
#   tests/cluster/run_htcondor.sh [CHROOT_DIR]
#
# Recipe (shared/notes/verified-facts.md): debootstrap trixie, install minicondor, start
# condor_master inside the chroot; the workflow is submitted by an unprivileged user with
# the project's own venv, which is bind-mounted into the chroot together with its Python.
# Exit status 0 means the report was written and every job ran as an HTCondor job.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
CHROOT=${1:-/srv/trixie}
USER_NAME=hgbench
VENV=$ROOT_DIR/.venv
PY_HOME=$(sed -n 's/^home = //p' "$VENV/pyvenv.cfg")   # the venv's interpreter lives here
PY_PREFIX=$(dirname "$PY_HOME")

[ "$(id -u)" = 0 ] || { echo "run_htcondor.sh: run as root" >&2; exit 1; }

if [ ! -x "$CHROOT/usr/sbin/condor_master" ]; then
  command -v debootstrap > /dev/null || apt-get install -y -qq debootstrap > /dev/null
  [ -d "$CHROOT/usr" ] || debootstrap --variant=minbase trixie "$CHROOT" http://deb.debian.org/debian
  chroot "$CHROOT" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq minicondor procps > /dev/null'
fi

bind() {  # bind SRC (with its submounts, e.g. /dev/shm for joblib) onto the same path inside the chroot, once
  mkdir -p "$CHROOT$1"
  mountpoint -q "$CHROOT$1" || mount --rbind "$1" "$CHROOT$1"
}
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
bind /dev
bind /sys
bind "$ROOT_DIR"
bind "$PY_PREFIX"
# The interpreter may sit under /root (pyenv): let the unprivileged user traverse to it.
d=$PY_PREFIX; while [ "$d" != / ]; do d=$(dirname "$d"); chmod o+x "$CHROOT$d" 2> /dev/null || true; done

cat > "$CHROOT/etc/condor/config.d/99-hepgenbench" <<CONF
# No per-job scratch mounts (they need namespaces the chroot does not have).
MOUNT_UNDER_SCRATCH =
# Jobs see the same paths as the submitter: a shared filesystem.
FILESYSTEM_DOMAIN = hepgenbench.local
UID_DOMAIN = hepgenbench.local
# The venv's PyPI bindings (24.x) fail FS authentication against the 23.9 schedd ("directory
# name doesn't match server's network address"), so the submitter uses CLAIMTOBE (set in
# its environment below). The pool listens on 127.0.0.1 only: acceptable here, nowhere else.
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, CLAIMTOBE
CONF
mkdir -p "$CHROOT/run/condor" "$CHROOT/var/lock/condor"
chroot "$CHROOT" sh -c 'chown condor:condor /run/condor /var/lock/condor /var/log/condor /var/lib/condor -R 2>/dev/null || true'
if chroot "$CHROOT" pgrep -x condor_master > /dev/null; then
  chroot "$CHROOT" condor_reconfig > /dev/null
else
  chroot "$CHROOT" /usr/sbin/condor_master
fi
for _ in $(seq 60); do
  chroot "$CHROOT" condor_status -af Name 2> /dev/null | grep -q . && break
  sleep 2
done
chroot "$CHROOT" condor_status || { echo "run_htcondor.sh: no slot came up" >&2; exit 1; }

chroot "$CHROOT" id "$USER_NAME" > /dev/null 2>&1 || chroot "$CHROOT" useradd -m "$USER_NAME"
WORK=/home/$USER_NAME/wf
rm -rf "$CHROOT$WORK"
mkdir -p "$CHROOT$WORK"
cp -r "$ROOT_DIR/Snakefile" "$ROOT_DIR/workflow" "$ROOT_DIR/config" "$CHROOT$WORK/"
chroot "$CHROOT" chown -R "$USER_NAME:$USER_NAME" "$WORK"

start=$(date +%s)
set +e  # report the outcome below rather than stop at a failed run
chroot "$CHROOT" runuser -u "$USER_NAME" -- env -i HOME=/home/$USER_NAME \
  PATH="$VENV/bin:/usr/bin:/bin" CONDOR_CONFIG=/etc/condor/condor_config \
  _CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS=CLAIMTOBE \
  sh -c "cd $WORK && snakemake --profile workflow/profiles/htcondor --configfile config/quick.yaml" \
  2>&1 | tee "$CHROOT$WORK.log"
status=${PIPESTATUS[0]}
set -e
echo "run_htcondor.sh: snakemake exited $status after $(( $(date +%s) - start )) s"
echo "jobs per (batch, request_cpus, request_memory MB, exit code):"
chroot "$CHROOT" condor_history -af JobBatchName RequestCpus RequestMemory ExitCode 2> /dev/null \
  | sed 's/-[0-9]* / /' | sort | uniq -c
[ "$status" = 0 ] && [ -s "$CHROOT$WORK/results/report/metrics.csv" ]
