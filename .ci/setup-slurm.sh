#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests marked `slurm`
# (tests/test_cluster.py). Debian's packages, no systemd, no slurmdbd: the recipe of
# shared/notes/verified-facts.md. Idempotent: a second run finds the daemons up and the
# partition idle and returns at once. Fails loudly if the partition never becomes idle.
#
# Usage (as root): .ci/setup-slurm.sh
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "setup-slurm.sh: must run as root (installs packages and starts daemons)" >&2
  exit 1
fi

NODE=$(hostname)
PARTITION=debug
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf

need_install=0
for bin in munged slurmctld slurmd sbatch; do
  command -v "$bin" > /dev/null || need_install=1
done
if [ "$need_install" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq munge slurmctld slurmd slurm-client > /dev/null
fi

# The node's memory as slurmd measures it, less 10% for the OS and the daemons: a job
# asking for more than the node has would stay pending forever instead of failing.
measured_mb=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
real_memory=$(( measured_mb * 9 / 10 ))
cpus=$(nproc)

mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/slurm
chown -R slurm:slurm /var/lib/slurm /var/log/slurm /run/slurm

new_conf=$(cat <<CONF
# Written by .ci/setup-slurm.sh: one node, one partition, no accounting database.
ClusterName=hepgenbench
SlurmctldHost=${NODE}
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Without accounting, squeue is the executor's only view of finished jobs: keep them
# listed well past its first status check (40 s) so none is reported as lost.
MinJobAge=600
# A node that restarts comes back idle instead of waiting for an admin.
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# A fake GPU (gres.conf points it at /dev/null) so that --gpus requests are accepted and
# scheduled, which is all the tests check; nothing runs on it.
GresTypes=gpu
NodeName=${NODE} CPUs=${cpus} RealMemory=${real_memory} Gres=gpu:1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
CONF
)
changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$CONF"
  changed=1
fi
printf 'NodeName=%s Name=gpu File=/dev/null\n' "$NODE" > "$GRES_CONF"

# munged runs as the munge user and needs its socket directory.
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 0755 /run/munge
[ -s /etc/munge/munge.key ] || { mungekey --create 2> /dev/null || create-munge-key -f; }
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged > /dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi
munge -n | unmunge > /dev/null || { echo "setup-slurm.sh: munge does not work" >&2; exit 1; }

if pgrep -x slurmctld > /dev/null && [ "$changed" = 1 ]; then
  # A changed node line (memory, gres) needs a restart, not just a reconfigure.
  stop_daemon() { kill "$(cat "$1")" 2> /dev/null || true; }
  stop_daemon /run/slurm/slurmd.pid
  stop_daemon /run/slurm/slurmctld.pid
  sleep 2
fi
pgrep -x slurmctld > /dev/null || /usr/sbin/slurmctld
pgrep -x slurmd > /dev/null || /usr/sbin/slurmd

# Wait for the partition to report the node idle (or mixed/allocated if jobs of an
# earlier run are still there); a node left down/drained by a crash is resumed.
for _ in $(seq 60); do
  state=$(sinfo -h -p "$PARTITION" -o '%t' 2> /dev/null | head -n1 || true)
  case "$state" in
    idle|mix|alloc)
      echo "setup-slurm.sh: partition ${PARTITION} on ${NODE} is ${state} (${cpus} CPUs, ${real_memory} MB, gpu:1)"
      exit 0 ;;
    down*|drain*|drng*)
      scontrol update NodeName="$NODE" State=RESUME 2> /dev/null || true ;;
  esac
  sleep 1
done
echo "setup-slurm.sh: partition ${PARTITION} never became idle; sinfo says '${state:-nothing}'" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
