#!/usr/bin/env bash
# Storage over HTTP against a release server: upload and download throughput of 1 MiB,
# 100 MiB and 1 GiB objects with curl, next to `cp` and `cp` + `sync` of the same file on
# the same disk, interleaved round by round (medians); and the server's RSS while a 1 GiB
# upload and download stream through it. BENCHMARKS.md's storage figures come from here:
#
#   cargo build --release -p fluxbase-api
#   storage/benches/http.sh target/release/fluxbase [ROUNDS]
#
# The server runs with its embedded PostgreSQL in a fresh temporary directory (the local
# backend under it, so objects and copies share a disk), realtime off, rate limits off, on
# port $PORT (default 18190). Every timed operation starts after an untimed `sync`, so none
# of them pays for the write-back of the one before it (without it, 100 MiB and 1 GiB
# `cp` figures swung by 2-4x with whatever was still dirty).
#
# When `nginx` is installed (Debian: `apt-get install nginx-core`), the same transfers also
# go through a bare nginx on port $NGINX_PORT (default 18191) serving the same disk: GET
# with `sendfile`, PUT through its WebDAV module (which does not fsync): the most an HTTP
# server on this machine does with the same curl client, a second baseline beside `cp`.
set -eu
BIN=$(realpath "$1"); ROUNDS=${2:-5}; PORT=${PORT:-18190}
DIR=$(mktemp -d /tmp/fluxbase-storage-bench-XXXXXX)
chmod 755 "$DIR"   # the embedded cluster runs as postgres when we are root
cd "$DIR"
FLUXBASE_SERVER_PORT=$PORT FLUXBASE_REALTIME_ENABLED=false \
FLUXBASE_SECURITY_RATE_LIMIT_ENABLED=false FLUXBASE_SERVER_BODY_LIMIT=4GB \
  "$BIN" > server.log 2>&1 &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 240); do
  kill -0 $SERVER 2>/dev/null || { cat server.log; exit 1; }
  grep -q 'listening' server.log && break
  sleep 0.5
done
KEY=$("$BIN" keys 2>/dev/null | awk '/service_role/{print $3}')
NGINX_PORT=${NGINX_PORT:-18191}; NGINX=
if command -v nginx > /dev/null; then
  mkdir -p nginx-root nginx-tmp
  cat > nginx.conf <<CONF
user root;
worker_processes auto;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_max_body_size 0;
  client_body_temp_path $DIR/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $DIR/nginx-root;
    dav_methods PUT DELETE;
    create_full_put_path on;
  }
}
CONF
  nginx -c "$DIR/nginx.conf" -g 'daemon on;' && NGINX="http://127.0.0.1:$NGINX_PORT"
  trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")"; rm -rf "$DIR"' EXIT
fi
URL="http://127.0.0.1:$PORT/storage/v1"
curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"id":"bench","name":"bench"}' "$URL/bucket" > /dev/null

ms() { date +%s%N; }
rss() { awk '/^VmRSS:/{print $2}' "/proc/$SERVER/status"; }   # KiB
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| size | op | fluxbase MB/s | cp MB/s | ratio | cp+sync MB/s | ratio | nginx MB/s | fluxbase ÷ nginx |"
echo "|---|---|---|---|---|---|---|---|---|"
for MIB in 1 100 1024; do
  head -c $((MIB * 1048576)) /dev/urandom > src
  : > t_cp; : > t_sync; : > t_up; : > t_down; : > t_nup; : > t_ndown
  rounds=$ROUNDS; [ "$MIB" -eq 1 ] && rounds=$((ROUNDS * 8)); [ "$MIB" -eq 1024 ] && rounds=3
  for _ in $(seq 1 "$rounds"); do
    rm -f dst; sync; t=$(ms); cp src dst; echo $(( $(ms) - t )) >> t_cp
    rm -f dst; sync; t=$(ms); cp src dst; sync dst; echo $(( $(ms) - t )) >> t_sync
    rm -f dst
    curl -fsS -X DELETE -H "Authorization: Bearer $KEY" "$URL/object/bench/obj" > /dev/null 2>&1 || true
    sync; t=$(ms)
    curl -fsS -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/octet-stream' \
      -T src "$URL/object/bench/obj" > /dev/null
    echo $(( $(ms) - t )) >> t_up
    sync; t=$(ms)
    curl -fsS -H "Authorization: Bearer $KEY" -o dst "$URL/object/bench/obj"
    echo $(( $(ms) - t )) >> t_down
    cmp -s src dst || { echo "download differs from the upload"; exit 1; }
    if [ -n "$NGINX" ]; then
      rm -f dst nginx-root/obj; sync; t=$(ms)
      curl -fsS -T src "$NGINX/obj" > /dev/null
      echo $(( $(ms) - t )) >> t_nup
      sync; t=$(ms)
      curl -fsS -o dst "$NGINX/obj"
      echo $(( $(ms) - t )) >> t_ndown
      cmp -s src dst || { echo "nginx download differs"; exit 1; }
    fi
  done
  rate() { awk -v n="$1" -v mib="$MIB" 'BEGIN {printf "%.0f", mib / (n / 1e9)}'; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
  cp_=$(median < t_cp); sync_=$(median < t_sync); up=$(median < t_up); down=$(median < t_down)
  nup="| |"; ndown="| |"
  if [ -n "$NGINX" ]; then
    n=$(median < t_nup); nup="| $(rate "$n") | $(ratio "$n" "$up") |"
    n=$(median < t_ndown); ndown="| $(rate "$n") | $(ratio "$n" "$down") |"
  fi
  echo "| $MIB MiB | upload | $(rate "$up") | $(rate "$cp_") | $(ratio "$cp_" "$up") | $(rate "$sync_") | $(ratio "$sync_" "$up") $nup"
  echo "| $MIB MiB | download | $(rate "$down") | $(rate "$cp_") | $(ratio "$cp_" "$down") | | $ndown"
done

# Server memory while 1 GiB goes up and comes back down (src is the 1 GiB file).
idle=$(rss); peak=$idle
( while kill -0 $SERVER 2>/dev/null; do rss; sleep 0.01; done ) > rss.log &
SAMPLER=$!
curl -fsS -X DELETE -H "Authorization: Bearer $KEY" "$URL/object/bench/obj" > /dev/null 2>&1 || true
curl -fsS -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/octet-stream' \
  -T src "$URL/object/bench/obj" > /dev/null
up_peak=$(sort -n rss.log | tail -1)
: > rss.log
curl -fsS -H "Authorization: Bearer $KEY" -o dst "$URL/object/bench/obj"
kill $SAMPLER
down_peak=$(sort -n rss.log | tail -1)
for p in $up_peak $down_peak; do [ "$p" -gt "$peak" ] && peak=$p; done
echo
echo "server RSS: idle $((idle / 1024)) MiB; 1 GiB upload peak $((up_peak / 1024)) MiB (+$(( (up_peak - idle) / 1024 )) MiB); 1 GiB download peak $((down_peak / 1024)) MiB (+$(( (down_peak - idle) / 1024 )) MiB)"
