#!/usr/bin/env bash
# Start a one-node Slurm cluster on loopback for tests/test_profile_slurm.py.
#
# Debian's slurm-wlm (22.05) and munge; the node is named `localhost` (slurmd -N localhost) because
# the machine's hostname is arbitrary. No accounting daemon: `sacct` does not work, which is why
# the Slurm profile asks the executor plugin to poll `squeue` (kept by MinJobAge=600 below).
# The node advertises 4 stand-in GPUs (GRES backed by plain files), so the profile's `gpu`
# requests are scheduled as on a GPU cluster.
#
# Idempotent: returns at once when `srun -n1 true` already works. Needs root. Exit 0 = cluster up.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
WAIT_SECONDS=${SLURM_START_TIMEOUT:-90}

slurm_works() {
    timeout 20 srun -n1 -t 1 true >/dev/null 2>&1
}

if command -v srun >/dev/null && slurm_works; then
    echo "start-slurm: already running"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "start-slurm: needs root (installs packages, writes /etc/slurm, starts daemons)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

mkdir -p /etc/slurm "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd /run/munge
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
cat >"$CONF" <<EOF
ClusterName=dlhmc-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
ReturnToService=2
MinJobAge=600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
# Slurm drops GPUs without device files; plain files stand in for /dev/nvidia0..3.
touch /var/spool/slurmd/fake-gpu{0..3}
echo "NodeName=localhost Name=gpu File=/var/spool/slurmd/fake-gpu[0-3]" >/etc/slurm/gres.conf

# munge: one key per machine, daemon as user munge.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged

# Stale daemons (e.g. from an earlier configuration) are replaced; their pids come from their files.
# slurmctld -c drops saved state, so a node drained by an earlier bad configuration comes back.
for daemon in slurmctld slurmd; do
    if [ -s "/run/$daemon.pid" ]; then
        kill "$(cat "/run/$daemon.pid")" 2>/dev/null || true
        rm -f "/run/$daemon.pid"
    fi
done
sleep 1
# Own sessions: the daemons outlive this script and the shell that called it.
setsid slurmctld -D -c >>"$LOGDIR/slurmctld.out" 2>&1 </dev/null &
setsid slurmd -D -N localhost >>"$LOGDIR/slurmd.out" 2>&1 </dev/null &

deadline=$((SECONDS + WAIT_SECONDS))
until slurm_works; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "start-slurm: cluster not up after ${WAIT_SECONDS}s; see $LOGDIR" >&2
        sinfo >&2 || true
        exit 1
    fi
    sleep 2
done
echo "start-slurm: up ($(sinfo -h -o '%N %c CPUs %G %t'))"
