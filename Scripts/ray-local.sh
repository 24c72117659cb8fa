#!/usr/bin/env bash
# swift-dataflow's own copy of the measured recipe (shared/recipes/ray-local.sh, 2026-11-21); the
# Ray executor's tests and `.ci/run` use it (RAY_LOCAL_VERSION=2.60.0).
#
# ray-local.sh - a real single-node Ray head whose dashboard serves the Ray Jobs REST API
# on loopback (default http://127.0.0.1:8265), for CI on one machine without systemd.
#
# Usage: ray-local.sh [install|start|stop|status|token|url|node-start|node-kill|node-stop]
#   install  pip install "ray[default]" (latest, or RAY_LOCAL_VERSION) unless ray (of that
#            version, when RAY_LOCAL_VERSION is set) and its [default] extras already import
#   start    (default) install if missing; run `ray start --head --block` in its own session in the
#            background; wait until GET /api/version and GET /api/jobs/ answer. Idempotent.
#   token    print the bearer token (empty with RAY_LOCAL_AUTH=disabled)
#   url      print the dashboard URL
#   stop     stop what start started, by pid only: SIGTERM to the `ray start --block` process,
#            then SIGTERM/SIGKILL to every process that was its descendant or in its session.
#            (Never `ray stop`: that kills every Ray process on the machine by name.)
#   status   print the pid and the dashboard's /api/version
#   node-start NAME RESOURCES_JSON CPUS   (swift-dataflow) a second Ray node on this machine that
#            joins the head (which must run with RAY_LOCAL_MULTINODE=1), in its own session, its
#            pid in /run/ray-local/node-NAME.pid; waits until the head lists it ALIVE.
#   node-kill NAME   SIGKILL every process of that node at once (a node lost mid-task).
#   node-stop NAME   SIGTERM, then SIGKILL, that node's processes.
#
# Ray 2.60 (seen here) turns on token authentication by default for `ray start --head`: every
# REST call except GET /api/authentication_mode then needs `Authorization: Bearer <token>`
# (else 401 "Unauthorized: Missing authentication token", 403 for a wrong one). This script keeps
# token auth on but writes its own token to /run/ray-local/auth_token (Ray's default would be
# ~/.ray/auth_token, shared with every other Ray user of the machine); RAY_LOCAL_AUTH=disabled
# turns auth off instead.
# On Linux Ray replaces --node-ip-address=127.0.0.1 by the machine's first non-loopback address;
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (single-node mode) keeps every Ray address on 127.0.0.1.
#
# Environment (all optional):
#   RAY_LOCAL_PYTHON          python that has / gets Ray (default python3)
#   RAY_LOCAL_VERSION         version for install, e.g. 2.60.0 (default: latest)
#   RAY_LOCAL_NUM_CPUS        --num-cpus (default 2)
#   RAY_LOCAL_RESOURCES       --resources JSON (default {"slot": 4}), usable as entrypoint_resources
#   RAY_LOCAL_DASHBOARD_PORT  (default 8265)
#   RAY_LOCAL_GCS_PORT        (default 6379)
#   RAY_LOCAL_OBJECT_STORE_MB (default 512)
#   RAY_LOCAL_TEMP_DIR        Ray's --temp-dir: session dirs, logs (default /tmp/ray)
#   RAY_LOCAL_AGENT_PORT      dashboard agent HTTP port, used by job submission (default 52365)
#   RAY_LOCAL_CLIENT_PORT     Ray Client server port (default 10001)
#   RAY_LOCAL_AUTH            token (default) or disabled
#   RAY_LOCAL_TIMEOUT         seconds to wait for the dashboard (default 120)
#   RAY_LOCAL_STOP_GRACE      seconds stop waits for `ray start` to drain and exit (default 40)
#   RAY_JOB_START_TIMEOUT_SECONDS  (Ray's own) a job still PENDING after this fails (default 900)
#   RAY_LOCAL_MULTINODE       1: (swift-dataflow) the head accepts more nodes: it runs on this
#                             machine's first non-loopback address (Ray refuses a second node in
#                             the 127.0.0.1 single-node mode); the dashboard stays on 127.0.0.1
set -euo pipefail

PY=${RAY_LOCAL_PYTHON:-python3}
RUN=/run/ray-local
LOGS=/var/log/ray-local
PIDFILE=$RUN/ray.pid
NUM_CPUS=${RAY_LOCAL_NUM_CPUS:-2}
RESOURCES=${RAY_LOCAL_RESOURCES:-'{"slot": 4}'}
DPORT=${RAY_LOCAL_DASHBOARD_PORT:-8265}
GCS_PORT=${RAY_LOCAL_GCS_PORT:-6379}
OBJ_MB=${RAY_LOCAL_OBJECT_STORE_MB:-512}
TEMP_DIR=${RAY_LOCAL_TEMP_DIR:-/tmp/ray}
AGENT_PORT=${RAY_LOCAL_AGENT_PORT:-52365}
CLIENT_PORT=${RAY_LOCAL_CLIENT_PORT:-10001}
AUTH=${RAY_LOCAL_AUTH:-token}
TOKEN_FILE=$RUN/auth_token
TIMEOUT=${RAY_LOCAL_TIMEOUT:-120}
URL=http://127.0.0.1:$DPORT

log() { echo "[ray-local] $*" >&2; }

# running PID -> 0 when PID exists and is not a zombie (kill -0 succeeds on zombies)
running() {
  local st
  st=$(awk '{print $3}' /proc/"$1"/stat 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# curl with the bearer token when auth is on
rcurl() {
  if [ "$AUTH" = token ] && [ -s "$TOKEN_FILE" ]; then
    curl -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$@"
  else
    curl "$@"
  fi
}

alive() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < /proc/"$pid"/cmdline 2>/dev/null | grep -q 'ray.scripts.scripts start'
}

do_install() {
  if "$PY" -c 'import sys, ray, ray.dashboard, aiohttp, aiohttp_cors, prometheus_client, opencensus, smart_open, colorful
sys.exit(len(sys.argv) > 1 and sys.argv[1] not in ("", ray.__version__))' "${RAY_LOCAL_VERSION:-}" >/dev/null 2>&1; then
    return 0
  fi
  log "installing ray[default]${RAY_LOCAL_VERSION:+==$RAY_LOCAL_VERSION}"
  "$PY" -m pip install -q "ray[default]${RAY_LOCAL_VERSION:+==$RAY_LOCAL_VERSION}"
}

do_start() {
  do_install
  install -d -m 0755 "$RUN" "$LOGS"
  if alive; then
    log "already running (pid $(cat "$PIDFILE"))"
  else
    log "starting ray head (dashboard $URL, auth $AUTH)"
    export RAY_USAGE_STATS_ENABLED=0
    if [ "${RAY_LOCAL_MULTINODE:-0}" = 1 ]; then
      unset RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
      NODE_IP=$(node_ip)
    else
      export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0   # node IP 127.0.0.1, single node only
      NODE_IP=127.0.0.1
    fi
    echo "$NODE_IP" > "$RUN/node_ip"
    if [ "$AUTH" = token ]; then
      if [ ! -s "$TOKEN_FILE" ]; then
        (umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$TOKEN_FILE")
      fi
      export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN_FILE
    else
      export RAY_AUTH_MODE=disabled
      rm -f "$TOKEN_FILE"
    fi
    # setsid: the head and everything it spawns share one session whose id is $!, so stop can
    # find them by pid. --block keeps that process as the parent of gcs_server, raylet, dashboard.
    # Job entrypoints inherit the working directory of `ray start`: run it from / so that jobs
    # never depend on where this script was called from (entrypoints should `cd` themselves).
    cd /
    setsid "$PY" -m ray.scripts.scripts start --head --block \
      --node-ip-address="$NODE_IP" --port="$GCS_PORT" \
      --num-cpus="$NUM_CPUS" --num-gpus=0 --resources="$RESOURCES" \
      --object-store-memory=$((OBJ_MB * 1024 * 1024)) \
      --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DPORT" \
      --dashboard-agent-listen-port="$AGENT_PORT" --ray-client-server-port="$CLIENT_PORT" \
      --temp-dir="$TEMP_DIR" --disable-usage-stats \
      </dev/null >>"$LOGS/ray-start.log" 2>&1 &
    echo $! > "$PIDFILE"
  fi
  local n=$(( TIMEOUT * 4 ))
  while [ $n -gt 0 ]; do
    if ! running "$(cat "$PIDFILE")"; then log "ray start exited; last lines of $LOGS/ray-start.log:"; tail -20 "$LOGS/ray-start.log" >&2; exit 1; fi
    if rcurl -sf -m 2 "$URL/api/version" >/dev/null 2>&1 && rcurl -sf -m 5 "$URL/api/jobs/" >/dev/null 2>&1; then
      log "dashboard answers: $(rcurl -s -m 2 "$URL/api/version")"
      return 0
    fi
    sleep 0.25; n=$((n - 1))
  done
  log "dashboard did not answer within ${TIMEOUT}s"; exit 1
}

# pids: the recorded pid, its descendants, and members of its session
tree_pids() {
  local root=$1
  ps -eo pid=,ppid=,sid= | awk -v root="$root" '
    { pid[NR]=$1; ppid[NR]=$2; sid[NR]=$3 }
    END {
      keep[root]=1; changed=1
      for (i in pid) if (sid[i]==root) keep[pid[i]]=1
      while (changed) { changed=0
        for (i in pid) if ((ppid[i] in keep) && !(pid[i] in keep)) { keep[pid[i]]=1; changed=1 } }
      for (p in keep) print p
    }'
}

do_stop() {
  local f
  for f in "$RUN"/node-*.pid; do [ -e "$f" ] && node_signal "$(basename "$f" .pid | sed 's/^node-//')" TERM; done
  if ! alive; then log "nothing started by ray-local is running"; rm -f "$PIDFILE"; return 0; fi
  local pid pids p n left
  pid=$(cat "$PIDFILE")
  pids=$(tree_pids "$pid" | tr '\n' ' ')
  log "stopping ray head (pid $pid; processes: $pids)"
  # `ray start --block` answers SIGTERM by draining the node (up to 30 s) and then stopping
  # gcs_server, raylet, dashboard and the workers itself.
  kill -TERM "$pid" 2>/dev/null || true
  n=$(( ${RAY_LOCAL_STOP_GRACE:-40} * 10 ))
  while [ $n -gt 0 ] && running "$pid"; do sleep 0.1; n=$((n - 1)); done
  running "$pid" && log "ray start (pid $pid) still running after ${RAY_LOCAL_STOP_GRACE:-40} s"
  # everything else we recorded (raylet, gcs_server, dashboard, workers, job entrypoints), plus
  # whatever joined the session meanwhile
  # shellcheck disable=SC2086
  pids=$( { printf '%s\n' $pids; tree_pids "$pid"; } | sort -u | tr '\n' ' ')
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  n=50
  while [ $n -gt 0 ]; do
    left=""
    for p in $pids; do running "$p" && left="$left $p"; done
    [ -z "$left" ] && break
    sleep 0.1; n=$((n - 1))
  done
  for p in $left; do log "SIGKILL $p"; kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$PIDFILE"
}

# node_ip -> this machine's first non-loopback IPv4 address (else 127.0.0.1)
node_ip() {
  local ip
  ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.' | grep -v '^127\.' | head -1)
  echo "${ip:-127.0.0.1}"
}

node_start() {
  local name=$1 resources=$2 cpus=$3 pidfile=$RUN/node-$1.pid ip n
  [ -s "$RUN/node_ip" ] && [ "$(cat "$RUN/node_ip")" != 127.0.0.1 ] || { log "the head runs in single-node mode (start it with RAY_LOCAL_MULTINODE=1)"; exit 1; }
  ip=$(cat "$RUN/node_ip")
  if [ -s "$pidfile" ] && running "$(cat "$pidfile")"; then log "node $name already running"; return 0; fi
  export RAY_USAGE_STATS_ENABLED=0
  [ "$AUTH" = token ] && export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN_FILE
  cd /
  setsid "$PY" -m ray.scripts.scripts start --address="$ip:$GCS_PORT" --node-ip-address="$ip" --block \
    --num-cpus="$cpus" --num-gpus=0 --resources="$resources" --object-store-memory=$((128 * 1024 * 1024)) \
    --temp-dir="$TEMP_DIR" --disable-usage-stats </dev/null >>"$LOGS/node-$name.log" 2>&1 &
  echo $! > "$pidfile"
  n=$(( TIMEOUT * 4 ))
  while [ $n -gt 0 ]; do
    running "$(cat "$pidfile")" || { log "node $name exited; see $LOGS/node-$name.log"; tail -5 "$LOGS/node-$name.log" >&2; exit 1; }
    if rcurl -sf -m 2 "$URL/api/v0/nodes" 2>/dev/null | "$PY" -c 'import sys, json
nodes = json.load(sys.stdin)["data"]["result"]["result"]
sys.exit(0 if sum(1 for n in nodes if n["state"] == "ALIVE") >= 2 else 1)' 2>/dev/null; then
      log "node $name joined ($resources, $cpus CPUs)"; return 0
    fi
    sleep 0.25; n=$((n - 1))
  done
  log "node $name did not join within ${TIMEOUT}s"; exit 1
}

node_signal() {
  local name=$1 signal=$2 pidfile=$RUN/node-$1.pid pid pids p
  [ -s "$pidfile" ] || { log "no node $name"; return 0; }
  pid=$(cat "$pidfile")
  pids=$(tree_pids "$pid" | tr '\n' ' ')
  log "node $name: SIG$signal to $pids"
  for p in $pids; do kill "-$signal" "$p" 2>/dev/null || true; done
  if [ "$signal" = TERM ]; then
    sleep 3
    for p in $pids; do running "$p" && kill -KILL "$p" 2>/dev/null || true; done
  fi
  rm -f "$pidfile"
}

do_status() {
  if alive; then
    echo "ray head: running (pid $(cat "$PIDFILE")), dashboard $URL"
    rcurl -s -m 2 "$URL/api/version"; echo
  else
    echo "ray head: not started by ray-local"
  fi
}

case "${1:-start}" in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  token) [ -s "$TOKEN_FILE" ] && cat "$TOKEN_FILE"; echo ;;
  url) echo "$URL" ;;
  node-start) node_start "${2:?name}" "${3:?resources json}" "${4:-1}" ;;
  node-kill) node_signal "${2:?name}" KILL ;;
  node-stop) node_signal "${2:?name}" TERM ;;
  *) echo "usage: $0 [install|start|stop|status|token|url|node-start NAME RESOURCES CPUS|node-kill NAME|node-stop NAME]" >&2; exit 2 ;;
esac
