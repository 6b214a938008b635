#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost with two fake GPUs, for the
# cluster test (and for trying profiles/slurm on one machine). As root:
#
#   tests/slurm_cluster.sh start    # install (apt) if needed, configure, start; idempotent
#   tests/slurm_cluster.sh stop     # stop the daemons
#   tests/slurm_cluster.sh env      # the SLURM_CONF line to export for clients
#   tests/slurm_cluster.sh logs     # the daemons' logs (printed when start fails)
#
# Partitions: cpu (default) and gpu; the node has Gres=gpu:2 backed by two
# character devices, so `sbatch -p gpu --gpus=1` sees CUDA_VISIBLE_DEVICES.
# No accounting daemon: Snakemake's profile checks status with squeue
# (MinJobAge keeps finished jobs visible to it). Everything lives in
# $SLURM_CI_DIR (default /tmp/expsearch-slurm); /etc/slurm/slurm.conf and
# gres.conf are symlinks to it while the cluster runs (srun inside a batch
# job reads the default path), removed by stop, because a config without a
# controller makes every client, and so every Snakemake start, wait ~10 s.
set -euo pipefail

DIR=${SLURM_CI_DIR:-/tmp/expsearch-slurm}
CONF=$DIR/slurm.conf

log() { echo "slurm_cluster: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    log "installing slurmctld slurmd slurm-client munge (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends \
                slurmctld slurmd slurm-client munge >/dev/null; }
}

write_config() {
    mkdir -p "$DIR"/{state,spool,log,run,dev}
    # Fake GPUs: gres/gpu needs character devices; these have /dev/null's numbers.
    for i in 0 1; do
        [ -c "$DIR/dev/nvidia$i" ] || mknod "$DIR/dev/nvidia$i" c 1 3
    done
    local mem_mb
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat >"$CONF" <<EOF
ClusterName=localci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
MinJobAge=3600
ReturnToService=2
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=$DIR/dev/nvidia[0-1]
EOF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    log "munged did not start"
    return 1
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

link_config() {
    mkdir -p /etc/slurm
    for name in slurm.conf gres.conf; do
        target=/etc/slurm/$name
        if [ -e "$target" ] && [ ! -L "$target" ]; then
            log "$target exists and is not ours; refusing to replace it"
            return 1
        fi
        ln -sfn "$DIR/$name" "$target"
    done
}

unlink_config() {
    for name in slurm.conf gres.conf; do
        target=/etc/slurm/$name
        if [ -L "$target" ] && [ "$(readlink "$target")" = "$DIR/$name" ]; then
            rm -f "$target"
        fi
    done
}

start() {
    install_packages
    write_config
    link_config
    start_munge
    export SLURM_CONF=$CONF
    running "$DIR/run/slurmctld.pid" || slurmctld -f "$CONF"
    running "$DIR/run/slurmd.pid" || slurmd -f "$CONF" -N localhost
    for _ in $(seq 120); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        case "$state" in
            idle*|mix*|alloc*) log "up (node $state); export SLURM_CONF=$CONF"; return 0 ;;
            drain*|down*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    log "the node did not come up (state: ${state:-none})"
    show_logs
    return 1
}

stop() {
    for pidfile in "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid"; do
        if running "$pidfile"; then
            kill "$(cat "$pidfile")"
            for _ in $(seq 50); do running "$pidfile" || break; sleep 0.1; done
        fi
    done
    unlink_config
}

show_logs() {
    for file in "$DIR"/log/*.log; do
        [ -f "$file" ] && { echo "==> $file"; tail -n 40 "$file"; }
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    logs) show_logs ;;
    *) echo "usage: $0 start|stop|env|logs" >&2; exit 2 ;;
esac
