#!/usr/bin/env bash
# Runs one load-test scenario against a fresh local server (embedded PostgreSQL in a
# temporary directory), as BENCHMARKS.md's figures were produced:
#
#   cargo build --release -p fluxbase-api -p fluxbase-loadtest
#   loadtest/scripts/bench-local.sh target/release out.json realtime-public --sockets 5000 --rate 40 --duration 10 --drain 10
#
# Arguments: BINDIR (holding fluxbase and fluxbase-loadtest), the JSON report path, the
# scenario, then the harness's flags. Rate limits are off (the harness is one client
# address family), connection limits raised. Extra server settings: SERVER_ENV="K=V …".
# `ws-ceiling` starts its own bare server (a child of the harness): no Fluxbase server.
set -u
BIN=$(cd "$1" && pwd); OUT=$2; SCENARIO=$3; shift 3
if [ "$SCENARIO" = ws-ceiling ]; then
  exec "$BIN/fluxbase-loadtest" ws-ceiling --quiet --out "$OUT" "$@"
fi
DIR=$(mktemp -d /tmp/fluxbase-bench-XXXXXX)
# As root the embedded cluster runs as postgres, which must reach the directory.
chmod 755 "$DIR"
cd "$DIR"
FLUXBASE_SERVER_PORT=${PORT:-18100} FLUXBASE_LOG_LEVEL=info FLUXBASE_SECURITY_RATE_LIMIT_ENABLED=false \
FLUXBASE_REALTIME_MAX_CONNECTIONS=60000 FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_IP=60000 \
FLUXBASE_DATABASE_MAX_CONNECTIONS=20 \
  env ${SERVER_ENV:-} "$BIN/fluxbase" > server.log 2>&1 &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER; rm -rf "$DIR"' EXIT
for _ in $(seq 1 240); do
  if ! kill -0 $SERVER 2>/dev/null; then cat server.log; exit 1; fi
  grep -q '"listening"\|listening' server.log 2>/dev/null && [ -f .fluxbase/jwt-secret ] && break
  sleep 0.5
done
DATABASE_URL="postgres://fluxbase:$(cat .fluxbase/pg-password)@127.0.0.1:$(cat .fluxbase/pg-port)/fluxbase" \
FLUXBASE_JWT_SECRET=$(cat .fluxbase/jwt-secret) \
  "$BIN/fluxbase-loadtest" "$SCENARIO" --url "http://127.0.0.1:${PORT:-18100}" --server-pid "$SERVER" \
  --quiet --out "$OUT" "$@"
