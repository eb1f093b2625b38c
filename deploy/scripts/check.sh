#!/usr/bin/env bash
# Checks the production kit of deploy/ with the real tools (issue 16). No container engine
# runs here: what needs one is validated statically, and the rest runs natively.
#
#   deploy/scripts/check.sh --bin PATH --scrape FILE --database-url URL --server HOST:PORT
#
#   --bin           the fluxbase binary (its --config-test judges every configuration)
#   --scrape        /metrics of a running server that has done some work
#   --database-url  that server's database: postgres_exporter scrapes it, backup.sh backs it up
#   --server        that server's address: NGINX is run in front of it
#   --only LIST     comma-separated sections (default: all; the tools are always checked) of
#                   dockerfile,compose,nginx,prometheus,dashboards,metrics,shell,
#                   systemd,helm,backup,s3
#
# api/tests/deploy.rs runs it (cargo test -p fluxbase-api --test main deploy). A missing
# tool fails at once with the command that installs it.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
DEPLOY=$ROOT/deploy
SCRIPTS=$DEPLOY/scripts
INSTALL_TOOLS="deploy/scripts/install-deps.sh deploy-tools"
VENV=${FLUXBASE_DEPLOY_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/fluxbase/deploy-venv}
PY=$VENV/bin/python
S3S_FS=${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs

BIN='' SCRAPE='' DB_URL='' SERVER='' ONLY=all
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --scrape) SCRAPE=$2; shift 2 ;;
    --database-url) DB_URL=$2; shift 2 ;;
    --server) SERVER=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: $0 --bin PATH --scrape FILE --database-url URL --server HOST:PORT [--only LIST]" >&2; exit 2 ;;
  esac
done

say() { echo "check: $*"; }
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }
wants() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }
need_arg() { [ -n "$2" ] || fail "section $1 needs $3"; }

TMP=$(mktemp -d)
chmod 711 "$TMP"   # the throwaway cluster runs as postgres when we are root
PIDS=()
PGDATA_TARGET=''
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$PGDATA_TARGET" ]; then as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_TARGET" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A free loopback port (the kernel's pick; released just before use).
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Polls URL until it answers 2xx (curl ARGS...), for at most 30 s.
await_http() {
  local deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null --max-time 2 "$@" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "no answer from ${*: -1} within 30 s"
    sleep 0.2
  done
}

pg_bindir() {
  local dir
  for dir in ${FLUXBASE_PG_BINDIR:-} $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
  return 1
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- tools ---------------------------------------------------------------------------------
tools() {
  local t
  for t in docker-compose nginx promtool shellcheck pg_dump pg_dumpall pg_restore psql openssl \
    curl sha256sum tar prometheus-node-exporter prometheus-postgres-exporter apt-cache; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || [ -x "/usr/bin/$t" ] \
      || fail "$t not found: run $INSTALL_TOOLS"
  done
  "$PY" -c 'import helm_python, kubernetes_validate, yaml' 2>/dev/null \
    || fail "the deploy virtualenv ($VENV: helm-python-sdk, kubernetes-validate) is missing: run $INSTALL_TOOLS"
  [ -x "$S3S_FS" ] || command -v s3s-fs >/dev/null 2>&1 || fail "s3s-fs not found: run deploy/scripts/install-deps.sh s3"
  [ -x "$S3S_FS" ] || S3S_FS=$(command -v s3s-fs)
  PG_BIN=$(pg_bindir) || fail "PostgreSQL server binaries (initdb) not found: run deploy/scripts/install-deps.sh postgres"
  ok "tools: docker-compose $(docker-compose version --short), $(nginx -v 2>&1 | sed 's/.*version: //'), promtool $(promtool --version 2>&1 | awk 'NR==1{print $3}'), shellcheck $(shellcheck --version | awk '/^version/{print $2}'), $(pg_dump --version), helm-python-sdk, kubernetes-validate, s3s-fs"
}

# Runs `fluxbase --config-test` with exactly the variables of FILE (KEY=VALUE lines) and
# the configuration file CONFIG.
config_test() {
  local what=$1 envfile=$2 config=$3 envs=()
  mapfile -t envs < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$envfile")
  local out
  out=$(cd "$TMP" && env -i PATH="$PATH" "${envs[@]}" "$BIN" --config "$config" --config-test 2>&1) \
    || fail "$what: fluxbase --config-test refuses it: $out"
  ok "$what accepted by fluxbase --config-test"
}

# --- Dockerfile ----------------------------------------------------------------------------
dockerfile() {
  need_arg dockerfile "$BIN" --bin
  "$PY" "$SCRIPTS/checks.py" dockerfile "$ROOT" "$TMP/docker.env" || exit 1
  local pkgs
  pkgs=$(sed -n 's/^# apt packages: //p' "$TMP/docker.env")
  # shellcheck disable=SC2086
  apt-cache show $pkgs >/dev/null 2>&1 \
    || fail "Dockerfile: apt packages not all known to this Debian ($pkgs): apt-get update?"
  ok "Dockerfile: runtime packages exist in Debian $(cut -d. -f1 /etc/debian_version 2>/dev/null) ($pkgs)"
  : >"$TMP/empty.yaml"
  echo "DATABASE_URL=postgresql://fluxbase:x@db:5432/fluxbase" >>"$TMP/docker.env"
  config_test "the image's ENV" "$TMP/docker.env" "$TMP/empty.yaml"
}

# --- Compose -------------------------------------------------------------------------------
compose() {
  need_arg compose "$BIN" --bin
  local project=$TMP/compose
  mkdir -p "$project"
  cp -r "$DEPLOY" "$project/deploy"
  cp "$ROOT/Dockerfile" "$project/"
  cp "$DEPLOY/.env.example" "$project/deploy/.env"
  (cd "$project/deploy" && docker-compose -f docker-compose.production.yml config >"$TMP/compose.yml" 2>"$TMP/compose.err") \
    || fail "docker-compose config: $(cat "$TMP/compose.err")"
  ok "docker-compose config parses the stack with .env.example"
  mkdir -p "$TMP/compose-env"
  "$PY" "$SCRIPTS/checks.py" compose "$TMP/compose.yml" "$project/deploy" "$DEPLOY/.env.example" "$TMP/compose-env" || exit 1
  : >"$TMP/empty.yaml"
  local f
  for f in "$TMP"/compose-env/*.env; do
    config_test "environment of $(basename "$f" .env) (compose, .env.example)" "$f" "$TMP/empty.yaml"
  done
  # The example's placeholders must not run: the server refuses the placeholder secret.
  local envs=() out
  mapfile -t envs <"$TMP/compose-env/fluxbase-1.env"
  if out=$(cd "$TMP" && env -i PATH="$PATH" "${envs[@]}" timeout 20 "$BIN" --config "$TMP/empty.yaml" serve 2>&1); then
    fail "a server started with the placeholder secret of .env.example"
  fi
  grep -q placeholder <<<"$out" || fail "the server did not refuse .env.example's placeholder secret: $out"
  ok "a server given .env.example unedited refuses to start (placeholder JWT secret)"
}

# --- NGINX ---------------------------------------------------------------------------------
nginx_check() {
  local conf=$TMP/nginx/conf http https
  mkdir -p "$conf/certs" "$TMP/nginx/logs"
  cp "$DEPLOY/nginx/nginx.conf" "$DEPLOY/nginx/fluxbase-proxy.conf" "$conf/"
  cp /etc/nginx/mime.types "$conf/" || fail "/etc/nginx/mime.types missing: run $INSTALL_TOOLS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$conf/certs/privkey.pem" -out "$conf/certs/fullchain.pem" 2>/dev/null
  http=$(free_port)
  https=$(free_port)
  # Only what cannot be the same here: paths into the temp prefix, ports on loopback, the
  # upstreams (Docker's DNS names) to the server under test.
  sed -i -e "s#^pid .*#pid $TMP/nginx/nginx.pid;#" -e "s#/var/log/nginx/#$TMP/nginx/logs/#" \
    -e "s#listen 80;#listen 127.0.0.1:$http;#" -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https ssl http2;#" \
    -e '/listen \[::\]/d' -e "s#fluxbase-[123]:8080#${SERVER:-127.0.0.1:9}#" "$conf/nginx.conf"
  nginx -t -q -p "$TMP/nginx" -c "$conf/nginx.conf" || fail "nginx -t rejects deploy/nginx/nginx.conf"
  ok "nginx -t accepts nginx.conf (throwaway certificate, temp prefix)"
  [ -n "$SERVER" ] || { say "no --server: NGINX not run in front of a server"; return 0; }
  nginx -p "$TMP/nginx" -c "$conf/nginx.conf" -g 'daemon off;' 2>"$TMP/nginx/stderr" &
  PIDS+=($!)
  await_http -k "https://127.0.0.1:$https/health"
  local body code
  body=$(curl -fsS -k "https://127.0.0.1:$https/health")
  [ "$body" = '{"status":"healthy"}' ] || fail "GET /health through NGINX: $body"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/health")
  [ "$code" = 301 ] || fail "plain HTTP is not redirected to HTTPS ($code)"
  code=$(curl -s -k -o /dev/null -w '%{http_code}' "https://127.0.0.1:$https/metrics")
  [ "$code" = 404 ] || fail "/metrics is published through NGINX ($code)"
  curl -fsS -k -D "$TMP/nginx/headers" -o /dev/null -H 'X-Request-Id: deploy-check-1' "https://127.0.0.1:$https/ready"
  grep -qi '^x-request-id: deploy-check-1' "$TMP/nginx/headers" || fail "X-Request-Id is not passed through"
  local path
  for path in /realtime /realtime/v1/websocket; do
    # A WebSocket handshake over TLS through NGINX: 101 with the RFC 6455 accept key.
    curl -sk -i -N --http1.1 --max-time 3 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
      -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
      "https://127.0.0.1:$https$path" >"$TMP/nginx/ws" 2>/dev/null || true
    if [ "$path" = /realtime ]; then
      head -1 "$TMP/nginx/ws" | grep -q ' 101' || fail "no WebSocket upgrade through NGINX on $path: $(head -1 "$TMP/nginx/ws")"
      grep -qi 'sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=' "$TMP/nginx/ws" || fail "bad WebSocket accept key on $path"
    else
      # Not served before issue 15: what matters is that NGINX forwarded the upgrade.
      head -1 "$TMP/nginx/ws" | grep -qE ' (101|404)' || fail "NGINX did not forward $path: $(head -1 "$TMP/nginx/ws")"
    fi
  done
  ok "NGINX in front of the server: HTTPS /health, HTTP->HTTPS, /metrics hidden, X-Request-Id, WebSocket upgrade on /realtime"
}

# --- Prometheus ----------------------------------------------------------------------------
prometheus_check() {
  local dir=$TMP/prometheus
  mkdir -p "$dir"
  cp "$DEPLOY/prometheus/alerts.yml" "$DEPLOY/prometheus/alerts.test.yml" "$dir/"
  sed 's#/etc/prometheus/alerts.yml#alerts.yml#' "$DEPLOY/prometheus/prometheus.yml" >"$dir/prometheus.yml"
  promtool check config "$dir/prometheus.yml" >"$dir/out" 2>&1 || fail "promtool check config: $(cat "$dir/out")"
  promtool check rules "$dir/alerts.yml" >"$dir/out" 2>&1 || fail "promtool check rules: $(cat "$dir/out")"
  (cd "$dir" && promtool test rules alerts.test.yml) >"$dir/out" 2>&1 || fail "promtool test rules: $(cat "$dir/out")"
  ok "promtool: check config, check rules ($(grep -c 'alert:' "$DEPLOY/prometheus/alerts.yml") alerts), test rules (alerts.test.yml)"
}

dashboards() {
  "$PY" "$SCRIPTS/checks.py" dashboards "$DEPLOY/grafana/dashboards" || exit 1
}

# --- metrics: the server's scrape and the exporters', run natively -------------------------
metrics() {
  need_arg metrics "$SCRAPE" --scrape
  need_arg metrics "$DB_URL" --database-url
  [ -s "$SCRAPE" ] || fail "empty scrape $SCRAPE"
  local port
  port=$(free_port)
  prometheus-node-exporter --web.listen-address="127.0.0.1:$port" >"$TMP/node-exporter.log" 2>&1 &
  PIDS+=($!)
  await_http "http://127.0.0.1:$port/metrics"
  curl -fsS "http://127.0.0.1:$port/metrics" >"$TMP/node.prom"
  port=$(free_port)
  # lib/pq (the exporter's driver) requires TLS unless told otherwise; the test cluster has none.
  local dsn=$DB_URL
  if [[ "$dsn" != *sslmode=* ]]; then
    if [[ "$dsn" == *\?* ]]; then dsn+='&sslmode=disable'; else dsn+='?sslmode=disable'; fi
  fi
  DATA_SOURCE_NAME=$dsn prometheus-postgres-exporter --web.listen-address="127.0.0.1:$port" \
    >"$TMP/postgres-exporter.log" 2>&1 &
  PIDS+=($!)
  await_http "http://127.0.0.1:$port/metrics"
  curl -fsS "http://127.0.0.1:$port/metrics" >"$TMP/postgres.prom"
  grep -q '^pg_up 1' "$TMP/postgres.prom" || fail "postgres_exporter cannot reach the database: $(tail -3 "$TMP/postgres-exporter.log")"
  "$PY" "$SCRIPTS/checks.py" metrics --pending "$SCRIPTS/pending-metrics.txt" \
    --rules "$DEPLOY/prometheus/alerts.yml" --dashboards "$DEPLOY/grafana/dashboards" \
    "$SCRAPE" "$TMP/node.prom" "$TMP/postgres.prom" || exit 1
}

# --- scripts and unit -----------------------------------------------------------------------
shell() {
  local scripts=("$SCRIPTS"/*.sh "$ROOT/.ci/run")
  (cd "$SCRIPTS" && shellcheck -x "${scripts[@]}") || fail "shellcheck"
  ok "shellcheck: ${#scripts[@]} scripts"
}

systemd() {
  need_arg systemd "$BIN" --bin
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    say "NOT VERIFIED: systemd-analyze is not available here (apt-get install systemd): deploy/systemd/fluxbase.service unchecked"
    return 0
  fi
  # The unit's binary path must exist for verify: point it at the binary under test.
  sed "s#/usr/local/bin/fluxbase#$BIN#g" "$DEPLOY/systemd/fluxbase.service" >"$TMP/fluxbase.service"
  local out
  out=$(systemd-analyze verify "$TMP/fluxbase.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
  for setting in NoNewPrivileges=yes ProtectSystem=strict ReadWritePaths=; do
    grep -q "^$setting" "$DEPLOY/systemd/fluxbase.service" || fail "the unit lacks $setting"
  done
  ok "systemd-analyze verify: fluxbase.service ($(systemd-analyze --version | awk 'NR==1{print $1, $2}'))"
}

helm() {
  need_arg helm "$BIN" --bin
  mkdir -p "$TMP/helm"
  "$PY" "$SCRIPTS/checks.py" helm "$DEPLOY/helm/fluxbase" "$TMP/helm" || exit 1
  local case
  for case in default runbook; do
    printf 'DATABASE_URL=postgresql://fluxbase:x@db:5432/fluxbase\nFLUXBASE_JWT_SECRET=%s\nFLUXBASE_REALTIME_ENABLED=true\n' \
      "$(printf 'r%.0s' {1..48})" >"$TMP/helm/$case.env"
    config_test "helm $case values: the ConfigMap's fluxbase.yaml and the pods' env" "$TMP/helm/$case.env" "$TMP/helm/$case.fluxbase.yaml"
  done
}

# --- backup and restore round trips ---------------------------------------------------------

# One line per table: "schema.table rows md5-of-sorted-row-md5s", every non-system table but
# the job system's live ones: the running server beats into jobs.workers every few seconds,
# and a schedule tick between the sums and the dump adds a job and moves its schedule.
table_checksums() {
  PGTZ=UTC PGDATESTYLE=ISO psql --no-password -XAtq -v ON_ERROR_STOP=1 --dbname="$1" <<'SQL'
SELECT format($q$SELECT %L || ' ' || count(*) || ' ' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '-') FROM %I.%I t$q$,
              format('%I.%I', n.nspname, c.relname), n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT (n.nspname = 'jobs' AND c.relname IN ('workers', 'jobs', 'schedules'))
ORDER BY n.nspname, c.relname
\gexec
SQL
}

file_checksums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# A fresh PostgreSQL cluster (initdb): the restore target. Superuser over its unix socket
# for the scripts; TCP on loopback with a password for the fluxbase binary, which cannot
# connect through a unix socket (it attempts TLS there: "invalid dns name").
start_target_cluster() {
  [ -z "$PGDATA_TARGET" ] || return 0
  local dir=$TMP/target-pg
  mkdir -p "$dir"
  TARGET_PASSWORD=$(openssl rand -hex 16)
  printf '%s\n' "$TARGET_PASSWORD" >"$dir/pwfile"
  [ "$(id -u)" != 0 ] || chown -R postgres "$dir"
  as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$dir/pwfile" -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 \
    || fail "initdb: $(tail -5 "$TMP/initdb.log")"
  rm -f "$dir/pwfile"
  PGDATA_TARGET=$dir/data
  TARGET_PORT=$(free_port)
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$TARGET_PORT -c unix_socket_directories='$dir' -c wal_level=logical" start >/dev/null \
    || fail "the restore target cluster did not start: $(tail -5 "$dir/log")"
  TARGET_SOCKET=$dir
}

# Creates database $1 in the target cluster and prints its URL (TCP, password).
target_db() {
  psql --no-password -Xq -v ON_ERROR_STOP=1 "postgresql:///postgres?host=$TARGET_SOCKET&port=$TARGET_PORT&user=postgres" -c "CREATE DATABASE $1" \
    || fail "cannot create database $1 in the target cluster"
  echo "postgresql://postgres:$TARGET_PASSWORD@127.0.0.1:$TARGET_PORT/$1?sslmode=disable"
}

# Files of every kind a storage directory holds: nested, empty, binary, odd names.
make_storage_fixture() {
  local dir=$1
  mkdir -p "$dir/avatars/user 1" "$dir/docs/2025/ü" "$dir/empty-dir"
  head -c 1048576 /dev/urandom >"$dir/avatars/user 1/photo.bin"
  : >"$dir/docs/empty.txt"
  printf 'héllo\n' >"$dir/docs/2025/ü/naïve name.txt"
}

# Environment of backup.sh/restore.sh in the round trips: nothing of this machine's own
# /etc/fluxbase is read.
backup_env() {
  export FLUXBASE_ENV_FILE=/nonexistent BACKUP_DIR=$TMP/backups RETENTION_DAYS=30 \
    CONFIG_FILES="$TMP/etc/fluxbase/env $TMP/etc/fluxbase/fluxbase.yaml" FLUXBASE_STORAGE_PROVIDER=local
}

compare_restore() {
  local what=$1 restored_url=$2 restored_storage=$3 src_sums=$4
  table_checksums "$restored_url" >"$TMP/restored.sums"
  diff -u "$src_sums" "$TMP/restored.sums" >"$TMP/diff" || fail "$what: tables differ after restore: $(head -30 "$TMP/diff")"
  diff -u <(file_checksums "$TMP/storage") <(file_checksums "$restored_storage") >"$TMP/diff" \
    || fail "$what: storage files differ after restore: $(head -30 "$TMP/diff")"
  local out
  out=$(env -i PATH="$PATH" DATABASE_URL="$restored_url" "$BIN" migrate 2>&1) || fail "$what: fluxbase migrate on the restored database: $out"
  grep -q 'up to date' <<<"$out" || fail "$what: the restored database lacks migrations: $out"
}

backup_round_trip() {
  need_arg backup "$DB_URL" --database-url
  need_arg backup "$BIN" --bin
  start_target_cluster
  backup_env
  make_storage_fixture "$TMP/storage"
  mkdir -p "$TMP/etc/fluxbase" "$BACKUP_DIR"
  printf 'DATABASE_URL=%s\nFLUXBASE_JWT_SECRET=not-a-real-one\n' "postgresql://example" >"$TMP/etc/fluxbase/env"
  printf 'log:\n  format: json\n' >"$TMP/etc/fluxbase/fluxbase.yaml"
  # Retention: one backup past RETENTION_DAYS (and a stale partial one) go, a recent one stays.
  local recent
  recent=$(date -u -d '-2 days' +%Y%m%d_%H%M%S)
  mkdir -p "$BACKUP_DIR/20000101_000000" "$BACKUP_DIR/20000101_000001.partial" "$BACKUP_DIR/$recent"
  table_checksums "$DB_URL" >"$TMP/source.sums"
  local tables rows
  tables=$(wc -l <"$TMP/source.sums")
  rows=$(awk '{s += $2} END {print s + 0}' "$TMP/source.sums")
  [ "$rows" -gt 0 ] || fail "the source database has no rows: nothing to prove"

  DATABASE_URL=$DB_URL FLUXBASE_STORAGE_LOCAL_PATH=$TMP/storage "$SCRIPTS/backup.sh" local 2>"$TMP/backup.log" \
    || fail "backup.sh local: $(cat "$TMP/backup.log")"
  local ts
  ts=$(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -newer "$TMP/source.sums" -printf '%f\n' | grep -E '^[0-9]{8}_[0-9]{6}$' | head -1)
  [ -n "$ts" ] || fail "backup.sh local made no timestamped directory: $(cat "$TMP/backup.log")"
  if [ -e "$BACKUP_DIR/20000101_000000" ] || [ -e "$BACKUP_DIR/20000101_000001.partial" ]; then
    fail "retention: backups older than RETENTION_DAYS were kept"
  fi
  [ -d "$BACKUP_DIR/$recent" ] || fail "retention: a backup within RETENTION_DAYS was removed"
  for f in database.dump roles.sql config.tar.gz storage.tar.gz manifest SHA256SUMS; do
    [ -s "$BACKUP_DIR/$ts/$f" ] || fail "backup $ts lacks $f"
  done
  [ "$(awk '{print $2}' "$BACKUP_DIR/$ts/SHA256SUMS" | sort | tr '\n' ' ')" = "config.tar.gz database.dump manifest roles.sql storage.tar.gz " ] \
    || fail "SHA256SUMS of $ts does not list exactly the backup's files: $(cat "$BACKUP_DIR/$ts/SHA256SUMS")"
  grep -q '^DATABASE_URL' "$TMP/backup.log" && fail "backup.sh logged a database URL with its password"

  local url
  url=$(target_db restored_local)
  DATABASE_URL=$url FLUXBASE_STORAGE_LOCAL_PATH=$TMP/restored-storage RESTORE_ROOT=$TMP/restored-root \
    "$SCRIPTS/restore.sh" "$ts" 2>"$TMP/restore.log" || fail "restore.sh $ts: $(cat "$TMP/restore.log")"
  compare_restore "local" "$url" "$TMP/restored-storage" "$TMP/source.sums"
  local f
  for f in env fluxbase.yaml; do
    cmp -s "$TMP/etc/fluxbase/$f" "$TMP/restored-root$TMP/etc/fluxbase/$f" \
      || fail "configuration file $f differs after restore"
  done

  # Safety: a second restore into the now populated database is refused.
  if DATABASE_URL=$url FLUXBASE_STORAGE_LOCAL_PATH=$TMP/other RESTORE_ROOT=$TMP/other-root \
    "$SCRIPTS/restore.sh" "$ts" 2>"$TMP/restore2.log"; then
    fail "restore.sh overwrote a populated database without RESTORE_FORCE"
  fi
  grep -q 'RESTORE_FORCE' "$TMP/restore2.log" || fail "the refusal does not say how to force: $(cat "$TMP/restore2.log")"
  # A damaged backup is refused before anything changes.
  cp -r "$BACKUP_DIR/$ts" "$BACKUP_DIR/20010101_000000"
  printf 'x' | dd of="$BACKUP_DIR/20010101_000000/storage.tar.gz" bs=1 seek=100 conv=notrunc 2>/dev/null
  if DATABASE_URL=$(target_db damaged) FLUXBASE_STORAGE_LOCAL_PATH=$TMP/damaged RESTORE_ROOT=$TMP/damaged-root \
    "$SCRIPTS/restore.sh" 20010101_000000 2>"$TMP/restore3.log"; then
    fail "restore.sh accepted a damaged backup"
  fi
  grep -q 'checksums do not match' "$TMP/restore3.log" || fail "damaged backup: $(cat "$TMP/restore3.log")"
  ok "backup.sh local -> restore.sh $ts into a fresh cluster: $tables tables ($rows rows) identical by checksum, $(file_checksums "$TMP/storage" | wc -l) storage files identical, config files back, fluxbase migrate: up to date; retention, refusal of a populated target and of a damaged backup"
}

s3_round_trip() {
  need_arg s3 "$DB_URL" --database-url
  need_arg s3 "$BIN" --bin
  start_target_cluster
  backup_env
  [ -d "$TMP/storage" ] || make_storage_fixture "$TMP/storage"
  mkdir -p "$TMP/etc/fluxbase" "$TMP/s3root"
  [ -f "$TMP/etc/fluxbase/env" ] || printf 'FLUXBASE_LOG_LEVEL=info\n' >"$TMP/etc/fluxbase/env"
  [ -f "$TMP/source.sums" ] || table_checksums "$DB_URL" >"$TMP/source.sums"
  local key secret
  key=$(openssl rand -hex 10)
  secret=$(openssl rand -hex 20)
  RUST_LOG=info "$S3S_FS" --host 127.0.0.1 --port 0 --access-key "$key" --secret-key "$secret" "$TMP/s3root" \
    >"$TMP/s3s.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 30)) endpoint=''
  until endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$TMP/s3s.log" | head -1) && [ -n "$endpoint" ]; do
    [ $SECONDS -lt $deadline ] || fail "s3s-fs did not start: $(cat "$TMP/s3s.log")"
    sleep 0.2
  done
  export BACKUP_S3_ENDPOINT=$endpoint BACKUP_S3_BUCKET=fluxbase-backups BACKUP_S3_PREFIX=prod/fluxbase \
    BACKUP_S3_ACCESS_KEY=$key BACKUP_S3_SECRET_KEY=$secret BACKUP_S3_REGION=us-east-1
  # The bucket, and a backup past RETENTION_DAYS for retention to remove.
  (
    # shellcheck source=settings.sh
    . "$SCRIPTS/settings.sh"
    # shellcheck source=s3.sh
    . "$SCRIPTS/s3.sh"
    s3_init
    s3_curl PUT "" "" "$S3_EMPTY_SHA256" --output /dev/null
    printf 'old\n' >"$TMP/old"
    s3_put "$TMP/old" "prod/fluxbase/20000101_000000/SHA256SUMS"
  ) || fail "cannot prepare the S3 bucket"

  DATABASE_URL=$DB_URL FLUXBASE_STORAGE_LOCAL_PATH=$TMP/storage "$SCRIPTS/backup.sh" s3 2>"$TMP/backup-s3.log" \
    || fail "backup.sh s3: $(cat "$TMP/backup-s3.log")"
  local ts
  ts=$(grep -o 'done: s3://[^ ]*' "$TMP/backup-s3.log" | grep -oE '[0-9]{8}_[0-9]{6}')
  [ -n "$ts" ] || fail "backup.sh s3 did not report its backup: $(cat "$TMP/backup-s3.log")"
  local listing
  listing=$(
    . "$SCRIPTS/settings.sh"
    . "$SCRIPTS/s3.sh"
    s3_init
    s3_list prod/fluxbase/
  ) || fail "cannot list the backups bucket"
  grep -q '20000101_000000' <<<"$listing" && fail "retention: the S3 backup past RETENTION_DAYS was kept"
  [ "$(grep -c "prod/fluxbase/$ts/" <<<"$listing")" = 6 ] || fail "backup $ts in S3 is not 6 files: $listing"

  local url
  url=$(target_db restored_s3)
  DATABASE_URL=$url FLUXBASE_STORAGE_LOCAL_PATH=$TMP/restored-storage-s3 RESTORE_ROOT=$TMP/restored-root-s3 \
    "$SCRIPTS/restore.sh" "$ts" s3 2>"$TMP/restore-s3.log" || fail "restore.sh $ts s3: $(cat "$TMP/restore-s3.log")"
  compare_restore "s3" "$url" "$TMP/restored-storage-s3" "$TMP/source.sums"
  ok "backup.sh s3 -> restore.sh $ts s3 against s3s-fs (curl --aws-sigv4): same tables, same storage files, retention in the bucket"
}

# Always: every other section relies on these tools.
tools
wants dockerfile && dockerfile
wants compose && compose
wants nginx && nginx_check
wants prometheus && prometheus_check
wants dashboards && dashboards
wants metrics && metrics
wants shell && shell
wants systemd && systemd
wants helm && helm
wants backup && backup_round_trip
wants s3 && s3_round_trip
echo "check: all passed"
