#!/usr/bin/env bash
# swift-dataflow's own copy of the measured recipe (shared/recipes/slurm-local.sh, 2026-11-21),
# with three partitions for preemption tests (see PARTITIONS below). The SLURM executor's tests
# and `.ci/run` use it; nothing here depends on files outside this repository.
#
# slurm-local.sh - a real single-node SLURM cluster (munge, slurmctld, slurmd and, by default,
# slurmdbd on a private MariaDB so that `sacct` works) on one Debian bookworm machine, as root,
# without systemd and without cgroups.
#
# Usage: slurm-local.sh [install|start|stop|status|reset]
#   install  apt-get install the packages that are missing (no recommends)
#   start    (default) install if missing; create the munge key if missing; start munged;
#            [dbd] start MariaDB + slurmdbd; write /etc/slurm/slurm.conf (+ gres.conf,
#            slurmdbd.conf); start slurmctld and slurmd; wait until `sinfo` shows the node idle.
#            Idempotent: daemons already started are left alone.
#   stop     cancel every job still queued/running, then stop (SIGTERM, then SIGKILL) only the
#            daemons this script started, by the pid files under /run/slurm-local.
#   status   print which daemons run and `sinfo`.
#   reset    stop, then delete controller state, accounting database, logs and the
#            job-completion log (job ids start again at 1).
#
# Environment (all optional):
#   SLURM_LOCAL_ACCOUNTING  dbd (default): slurmdbd + MariaDB, full `sacct` (arrays, steps,
#                           exit codes). none: no slurmdbd; plain `sacct` then only prints
#                           "Slurm accounting storage is disabled" (exit 0); use `sacct -c`,
#                           which reads the job-completion log (written in both modes).
#   SLURM_LOCAL_CPUS        CPUs to advertise (default: what `slurmd -C` detects). More than the
#                           machine has overcommits it; SlurmdParameters=config_overrides allows it.
#   SLURM_LOCAL_MEM_MB      RealMemory in MB (default: what `slurmd -C` detects)
#   SLURM_LOCAL_GPUS        fake "gpu" GRES on the node, for --gres=gpu:N (default 2; 0 = none)
#   SLURM_LOCAL_DB_PORT     MariaDB port on 127.0.0.1 (default 3307)
#   SLURM_LOCAL_TIMEOUT     seconds to wait for the node to become idle (default 60)
#
#
# Partitions: `debug` (default, never preempted), `low` (preemptible: PreemptMode=CANCEL) and
# `high` (PriorityTier=2): a job in `high` that needs `low`'s CPUs cancels it within ~1 s, and
# SLURM records it PREEMPTED (research: engines.md 6.1).
#
# Finished jobs stay in `squeue -t all` / `scontrol show job` / `squeue --json` for MinJobAge
# (3600 s here), in every mode.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
DBD_CONF=$CONF_DIR/slurmdbd.conf
STATE=/var/spool/slurm-local
DB_DIR=/var/lib/slurm-local/mysql
LOGS=/var/log/slurm-local
RUN=/run/slurm-local
NODE=$(hostname -s 2>/dev/null || echo localhost)
ACCOUNTING=${SLURM_LOCAL_ACCOUNTING:-dbd}
DB_PORT=${SLURM_LOCAL_DB_PORT:-3307}
DB_SOCK=$RUN/mysql/mysqld.sock
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
PKGS="slurmctld slurmd slurm-client munge"
[ "$ACCOUNTING" = dbd ] && PKGS="$PKGS slurmdbd mariadb-server"

log() { echo "[slurm-local] $*" >&2; }

# alive PIDFILE COMM -> 0 when the pid in PIDFILE runs the program COMM (and is no zombie)
alive() {
  local f=$1 comm=$2 pid st
  [ -s "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  st=$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$comm" ]
}

# wait_for SECONDS COMMAND... -> 0 as soon as COMMAND succeeds
wait_for() {
  local n=$(( $1 * 10 )); shift
  while [ $n -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1; n=$((n - 1))
  done
  return 1
}

do_install() {
  local missing="" p
  for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  log "installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

start_munge() {
  install -d -m 0755 -o munge -g munge /run/munge
  install -d -m 0700 -o munge -g munge /var/log/munge /etc/munge
  install -d -m 0711 -o munge -g munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key --force
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already answers"
    return 0
  fi
  log "starting munged"
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged   # daemonizes, writes /run/munge/munged.pid
  wait_for 10 alive /run/munge/munged.pid munged || { log "munged did not start"; exit 1; }
  cp /run/munge/munged.pid "$RUN/munged.pid"   # marks it as started by this script
  munge -n | unmunge >/dev/null
}

db_sql() { mariadb --no-defaults --socket="$DB_SOCK" -u root "$@"; }

# listening PORT -> 0 when something listens on 127.0.0.1:PORT
listening() {
  if command -v ss >/dev/null; then ss -ltn | grep -q ":$1 "; else (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; fi
}

start_db() {
  install -d -m 0755 -o mysql -g mysql "$RUN/mysql" "$(dirname "$DB_DIR")"
  touch "$LOGS/mariadb.log"; chown mysql:mysql "$LOGS/mariadb.log"
  if ! alive "$RUN/mariadbd.pid" mariadbd; then
    if [ ! -d "$DB_DIR/mysql" ]; then
      log "initialising MariaDB in $DB_DIR"
      mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
        --auth-root-authentication-method=socket --skip-test-db >>"$LOGS/mariadb.log" 2>&1
    fi
    log "starting mariadbd (127.0.0.1:$DB_PORT)"
    setsid mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" --socket="$DB_SOCK" \
      --pid-file="$RUN/mysql/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
      --log-error="$LOGS/mariadb.log" --innodb-buffer-pool-size=128M \
      --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    echo $! > "$RUN/mariadbd.pid"
    wait_for 30 mariadb-admin --no-defaults --socket="$DB_SOCK" ping \
      || { log "mariadbd did not start"; tail -20 "$LOGS/mariadb.log" >&2; exit 1; }
  fi
  db_sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
             CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
             GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
             GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat > "$DBD_CONF" <<EOF
# Written by slurm-local.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 0600 "$DBD_CONF"
  if ! alive "$RUN/slurmdbd.pid" slurmdbd; then
    log "starting slurmdbd"
    rm -f "$RUN/slurmdbd.pid"
    slurmdbd </dev/null >>"$LOGS/slurmdbd.out" 2>&1   # daemonizes
    wait_for 30 alive "$RUN/slurmdbd.pid" slurmdbd || { log "slurmdbd did not start"; tail -20 "$LOGS/slurmdbd.log" >&2; exit 1; }
    wait_for 30 listening 6819 || { log "slurmdbd does not listen"; tail -20 "$LOGS/slurmdbd.log" >&2; exit 1; }
  fi
}

write_conf() {
  local detected topo mem gpus node_gres="" gres_types="" i acct
  detected=$(slurmd -C | head -1)
  if [ -n "${SLURM_LOCAL_CPUS:-}" ]; then
    topo="CPUs=$SLURM_LOCAL_CPUS"
  else  # keep the detected topology, or slurmd logs "Node configuration differs from hardware"
    topo=$(grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$detected")
  fi
  mem=${SLURM_LOCAL_MEM_MB:-$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")}
  gpus=${SLURM_LOCAL_GPUS:-2}
  rm -f "$RUN"/gpu[0-9]*
  if [ "$gpus" -gt 0 ]; then
    # Slurm 22.05 drops a GPU GRES that has no File=, and wants character devices: fake ones
    # (major 1 minor 3, what /dev/null is). No real GPU: scheduling and CUDA_VISIBLE_DEVICES only.
    for i in $(seq 0 $((gpus - 1))); do
      mknod "$RUN/gpu$i" c 1 3 2>/dev/null || touch "$RUN/gpu$i"
    done
    gres_types="GresTypes=gpu"
    # sacct's AllocTRES then lists gres/gpu; slurmctld refuses this TRES without slurmdbd
    [ "$ACCOUNTING" = dbd ] && gres_types="$gres_types
AccountingStorageTRES=gres/gpu"
    node_gres="Gres=gpu:$gpus"
    echo "NodeName=$NODE Name=gpu File=$RUN/gpu[0-$((gpus - 1))]" > "$GRES_CONF"
  else
    rm -f "$GRES_CONF"
  fi
  if [ "$ACCOUNTING" = dbd ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819"
  else
    acct="AccountingStorageType=accounting_storage/none"
  fi
  cat > "$CONF" <<EOF
# Written by slurm-local.sh: single node, no cgroups.
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
LogTimeFormat=iso8601_ms
SchedulerType=sched/backfill
# batch_sched_delay=0: start batch jobs at once (default 3 s makes submit->start 0.5-3 s).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without DefMemPerCPU a job without --mem gets the whole node's memory and jobs run one at a time.
DefMemPerCPU=512
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$acct
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
MpiDefault=none
MailProg=/bin/true
SlurmdParameters=config_overrides
ReturnToService=2
# Reject at submit what can never run here (else e.g. --cpus-per-task=4 on 2 CPUs stays PENDING
# forever with Reason=PartitionConfig).
EnforcePartLimits=ALL
# Finished jobs stay visible to squeue / scontrol show job for this many seconds.
MinJobAge=3600
# Seconds between SIGTERM and SIGKILL on scancel / time limit.
KillWait=5
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $topo RealMemory=$mem $node_gres State=UNKNOWN
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
PartitionName=low Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=CANCEL
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
  log "wrote $CONF (node $NODE, $topo, RealMemory=$mem, gpu GRES=$gpus, accounting $ACCOUNTING)"
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }

wait_idle() {
  local n=$(( TIMEOUT * 4 )) st=""
  while [ $n -gt 0 ]; do
    st=$(node_state || true)
    case "$st" in
      idle|mixed|allocated|completing) log "node $NODE is $st"; return 0 ;;
      down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
      inval*) log "node $NODE is INVAL: $(scontrol show node "$NODE" | grep -o 'Reason=.*')"; return 1 ;;
    esac
    sleep 0.25; n=$((n - 1))
  done
  log "node $NODE not idle after ${TIMEOUT}s (state '$st'); see $LOGS/"
  return 1
}

do_start() {
  do_install
  install -d -m 0755 "$RUN" "$LOGS" "$STATE" "$STATE/ctld" "$STATE/d" "$CONF_DIR"
  start_munge
  [ "$ACCOUNTING" = dbd ] && start_db
  if alive "$RUN/slurmctld.pid" slurmctld || alive "$RUN/slurmd.pid" slurmd; then
    log "slurm daemons already started by this script; not rewriting $CONF"
  else
    write_conf
  fi
  if ! alive "$RUN/slurmctld.pid" slurmctld; then
    log "starting slurmctld"
    rm -f "$RUN/slurmctld.pid"
    slurmctld -f "$CONF" </dev/null >>"$LOGS/slurmctld.out" 2>&1   # daemonizes
    wait_for 20 alive "$RUN/slurmctld.pid" slurmctld || { log "slurmctld did not start"; tail -20 "$LOGS/slurmctld.log" >&2 || true; exit 1; }
  fi
  if ! alive "$RUN/slurmd.pid" slurmd; then
    log "starting slurmd"
    rm -f "$RUN/slurmd.pid"
    slurmd -f "$CONF" -N "$NODE" </dev/null >>"$LOGS/slurmd.out" 2>&1   # daemonizes
    wait_for 20 alive "$RUN/slurmd.pid" slurmd || { log "slurmd did not start"; tail -20 "$LOGS/slurmd.log" >&2 || true; exit 1; }
  fi
  wait_idle
}

# stop_pid PIDFILE COMM
stop_pid() {
  local f=$1 comm=$2 pid n
  if alive "$f" "$comm"; then
    pid=$(cat "$f")
    log "stopping $comm (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    n=200
    while [ $n -gt 0 ] && alive "$f" "$comm"; do sleep 0.1; n=$((n - 1)); done
    if alive "$f" "$comm"; then log "SIGKILL $comm (pid $pid)"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

do_stop() {
  if alive "$RUN/slurmctld.pid" slurmctld; then
    local ids n
    ids=$(squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING -o %A 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${ids// /}" ]; then
      log "cancelling jobs: $ids"
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null || true
      n=60
      while [ $n -gt 0 ] && [ -n "$(squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING,COMPLETING -o %A 2>/dev/null)" ]; do
        sleep 0.25; n=$((n - 1))
      done
    fi
  fi
  stop_pid "$RUN/slurmd.pid" slurmd
  stop_pid "$RUN/slurmctld.pid" slurmctld
  stop_pid "$RUN/slurmdbd.pid" slurmdbd
  stop_pid "$RUN/mariadbd.pid" mariadbd
  stop_pid "$RUN/munged.pid" munged
}

do_status() {
  local d
  for d in munged mariadbd slurmdbd slurmctld slurmd; do
    if alive "$RUN/$d.pid" "$d"; then echo "$d: running (pid $(cat "$RUN/$d.pid"))"; else echo "$d: not started by slurm-local"; fi
  done
  sinfo 2>/dev/null || true
}

do_reset() {
  do_stop
  rm -rf "${STATE:?}/ctld" "${STATE:?}/d" "${DB_DIR:?}" "${LOGS:?}"/*
  log "state, accounting database and logs removed"
}

case "${1:-start}" in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  reset) do_reset ;;
  *) echo "usage: $0 [install|start|stop|status|reset]" >&2; exit 2 ;;
esac
