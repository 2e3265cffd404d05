#!/bin/sh
# cluster.sh - a single-node Slurm cluster in a temporary directory, for tests.
#
#   tests/slurm/cluster.sh start DIR   # prints SLURM_CONF=DIR/slurm.conf when it is up
#   tests/slurm/cluster.sh stop DIR    # stops the daemons, removes DIR
#
# Moving parts, all inside DIR and on free ports, so that a cluster of the
# host (or another test's) is never touched: munged (as the munge user, its
# own key and socket), slurmctld and slurmd (as root, SlurmUser=root) with a
# slurm.conf that names this host (`hostname -s`) with its CPUs and memory.
# Clients (srun, sbatch, squeue, scancel, sacct) find it through SLURM_CONF;
# they reach munged through the socket named in the config (AuthInfo), not
# the system's. Nothing needs systemd. stop cancels the jobs left, kills the
# daemons by the pid files they wrote (never by name), then removes DIR.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop() {
    [ -d "$dir" ] || return 0
    # jobs first (a failed test may leave some running): their steps'
    # slurmstepd would outlive slurmd
    if [ -s "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
        export SLURM_CONF="$dir/slurm.conf"
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            scancel $jobs 2>/dev/null || true
            i=0
            while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        fi
    fi
    for p in slurmd slurmctld munged; do
        f="$dir/run/$p.pid"
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    done
    case "$dir" in /|"") ;; *) rm -rf "$dir" ;; esac
}

fail() {
    echo "cluster.sh: $*" >&2
    for l in munged slurmctld slurmd; do
        [ -s "$dir/log/$l.log" ] && { echo "--- $l.log" >&2; tail -n 20 "$dir/log/$l.log" >&2; }
    done
    stop
    exit 1
}

start() {
    [ "$(id -u)" = 0 ] || { echo "cluster.sh: must run as root (slurmd and munged need it)" >&2; exit 1; }
    for b in munged slurmctld slurmd srun sinfo; do
        command -v $b >/dev/null || { echo "cluster.sh: $b not found (make deps installs slurm-wlm and munge)" >&2; exit 1; }
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    mkdir -p "$dir/run" "$dir/log" "$dir/state" "$dir/spool" "$dir/munge"
    chown munge:munge "$dir/munge" "$dir/run" 2>/dev/null || true
    chmod 700 "$dir/munge"
    chmod 755 "$dir/run" "$dir" "$dir/log"
    touch "$dir/log/munged.log"; chown munge "$dir/log/munged.log"
    # munge: a key of our own (created), its socket in DIR
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
    chown munge:munge "$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    if command -v runuser >/dev/null; then as_munge="runuser -u munge --"; else as_munge="su -s /bin/sh munge -c"; fi
    $as_munge munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" \
        --force || fail "munged did not start"
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    ctl_port=$(free_port); d_port=$(free_port); srun_lo=$(free_port)
    cat > "$dir/slurm.conf" <<CONF
ClusterName=spinqtest
SlurmctldHost=$host
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SrunPortRange=$srun_lo-$((srun_lo + 100))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
PlugStackConfig=$dir/plugstack.conf
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    : > "$dir/plugstack.conf"
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$dir/slurm.conf" -i || fail "slurmctld did not start"
    slurmd -f "$dir/slurm.conf" -N "$host" || fail "slurmd did not start"
    i=0
    until sinfo -h -N -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; do
        i=$((i + 1))
        [ $i -lt 150 ] || fail "node $host not idle after 30 s: $(sinfo -h -N -o '%T %E' 2>&1)"
        sleep 0.2
    done
    echo "SLURM_CONF=$dir/slurm.conf"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
