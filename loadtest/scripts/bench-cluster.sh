#!/usr/bin/env bash
# Runs one load-test scenario against N local Fluxbase instances scaled out over Redis
# (realtime.bus=redis, one redis-server on a unix socket), sockets spread round robin over
# the instances (`--spread`), as BENCHMARKS.md's scale-out figures were produced:
#
#   cargo build --release -p fluxbase-api -p fluxbase-loadtest
#   loadtest/scripts/bench-cluster.sh target/release 3 out.json realtime-public --sockets 3000 --rate 20 --duration 10 --drain 10
#
# Arguments: BINDIR, N (instances), the JSON report path, the scenario, then the harness's
# flags. Instance 1 starts the embedded PostgreSQL; the others use it through DATABASE_URL.
# BUS=local with N=1 runs today's single instance (no Redis) for the baseline. Prints each
# instance's CPU time over the run (utime+stime from /proc).
set -u
BIN=$(cd "$1" && pwd); N=$2; OUT=$3; SCENARIO=$4; shift 4
BUS=${BUS:-redis}
DIR=$(mktemp -d /tmp/fluxbase-cluster-XXXXXX)
chmod 755 "$DIR"
PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT
COMMON=(FLUXBASE_LOG_LEVEL=info FLUXBASE_SECURITY_RATE_LIMIT_ENABLED=false
  FLUXBASE_REALTIME_MAX_CONNECTIONS=60000 FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_IP=60000
  FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER=60000 FLUXBASE_DATABASE_MAX_CONNECTIONS=10)
if [ "$BUS" = redis ]; then
  redis-server --port 0 --unixsocket "$DIR/redis.sock" --dir "$DIR" --save "" --appendonly yes \
    > "$DIR/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$DIR/redis.sock" ] && break; sleep 0.1; done
  COMMON+=(FLUXBASE_REALTIME_BUS=redis "FLUXBASE_REDIS_URL=redis+unix://$DIR/redis.sock")
fi
wait_listening() { # dir pid
  for _ in $(seq 1 240); do
    if ! kill -0 "$2" 2>/dev/null; then cat "$1/server.log"; exit 1; fi
    grep -q 'listening' "$1/server.log" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "instance in $1 did not start" >&2; exit 1
}
SERVERS=()
for i in $(seq 1 "$N"); do
  mkdir -m 755 "$DIR/$i"
  EXTRA=()
  if [ "$i" -gt 1 ]; then
    EXTRA=("DATABASE_URL=$DB" "FLUXBASE_JWT_SECRET=$SECRET")
  fi
  (cd "$DIR/$i" && exec env "${COMMON[@]}" "${EXTRA[@]}" FLUXBASE_SERVER_PORT=$((18100 + i)) \
    "$BIN/fluxbase" > server.log 2>&1) &
  PID=$!
  PIDS+=("$PID"); SERVERS+=("$PID")
  wait_listening "$DIR/$i" "$PID"
  if [ "$i" = 1 ]; then
    for _ in $(seq 1 100); do [ -f "$DIR/1/.fluxbase/jwt-secret" ] && break; sleep 0.1; done
    DB="postgres://fluxbase:$(cat "$DIR/1/.fluxbase/pg-password")@127.0.0.1:$(cat "$DIR/1/.fluxbase/pg-port")/fluxbase"
    SECRET=$(cat "$DIR/1/.fluxbase/jwt-secret")
  fi
done
SPREAD=""
for i in $(seq 2 "$N"); do SPREAD="$SPREAD${SPREAD:+,}http://127.0.0.1:$((18100 + i))"; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
BEFORE=(); for pid in "${SERVERS[@]}"; do BEFORE+=("$(ticks "$pid")"); done
START=$(date +%s.%N)
DATABASE_URL=$DB FLUXBASE_JWT_SECRET=$SECRET \
  "$BIN/fluxbase-loadtest" "$SCENARIO" --url http://127.0.0.1:18101 ${SPREAD:+--spread "$SPREAD"} \
  --server-pid "${SERVERS[0]}" --quiet --out "$OUT" "$@"
STATUS=$?
END=$(date +%s.%N)
HZ=$(getconf CLK_TCK)
for k in "${!SERVERS[@]}"; do
  AFTER=$(ticks "${SERVERS[$k]}")
  awk -v b="${BEFORE[$k]}" -v a="$AFTER" -v hz="$HZ" -v s="$START" -v e="$END" -v i=$((k + 1)) \
    'BEGIN { printf "instance %d: %.1f s CPU over %.1f s (%.0f%%)\n", i, (a - b) / hz, e - s, 100 * (a - b) / hz / (e - s) }'
done
exit $STATUS
