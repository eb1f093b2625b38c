#!/usr/bin/env bash
# Installs the system packages Fluxbase's server and test suite use, only where missing.
# Idempotent and quiet when everything is present. Debian/Ubuntu (apt-get); as root, or
# with passwordless sudo.
#
#   deploy/scripts/install-deps.sh [component...]     (default: postgres)
#
# Components:
#   postgres      PostgreSQL server binaries (initdb, postgres) and the wal2json plugin
#   redis         redis-server (scale-out tests)
#   s3            s3s-fs, a real S3 server on the local file system (storage tests)
#   js            Node.js and npm (Debian's), then the api tests' npm packages
#                 (api/tests/js: the real @supabase/* clients, ws, and Node 22 itself from
#                 the npm registry, which the clients need)
#   deploy-tools  docker-compose (config parsing only), nginx, promtool, shellcheck,
#                 pg_dump/pg_restore, the node and postgres exporters, curl, and a Python
#                 virtualenv with Helm's engine (helm-python-sdk) and the Kubernetes schemas
#                 (kubernetes-validate) (deploy/scripts/check.sh)
#   all           every component above
set -euo pipefail

S3S_FS_VERSION=0.14.1
# The deploy check's Python tools: Helm v4's Go engine through ctypes, no helm binary.
HELM_PYTHON_SDK_VERSION=0.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0
DEPLOY_VENV=${FLUXBASE_DEPLOY_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/fluxbase/deploy-venv}

say() { echo "install-deps: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    say "need root (or passwordless sudo) to run: $*"
    exit 1
  fi
}

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get on this machine: install these packages yourself: $*"
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "installing $*"
  # Packages such as nginx or prometheus would start their daemons: forbid that (policy-rc.d
  # exit 101) for the length of the install when no policy is in place already.
  local policy=/usr/sbin/policy-rc.d placed=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" && placed=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ "$placed" = 1 ]; then as_root rm -f "$policy"; fi
}

# The newest PostgreSQL server bin directory (Debian layout), or one on PATH.
pg_bindir() {
  local dir
  for dir in ${FLUXBASE_PG_BINDIR:-} $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v postgres)")"; return 0
  fi
  return 1
}

install_postgres() {
  if ! pg_bindir >/dev/null; then
    apt_install postgresql postgresql-client
  fi
  local bindir major
  bindir=$(pg_bindir)
  major=$(basename "$(dirname "$bindir")")
  if [ ! -f "$(dirname "$bindir")/lib/wal2json.so" ]; then
    if [[ "$major" =~ ^[0-9]+$ ]]; then
      apt_install "postgresql-$major-wal2json"
    else
      say "cannot tell the PostgreSQL major version of $bindir: install its wal2json plugin yourself"
      exit 1
    fi
  fi
  # As root the embedded clusters run as the postgres user, which the package creates.
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    say "creating the postgres user"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

install_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

install_s3() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
  if [ -x "$bin" ] || command -v s3s-fs >/dev/null 2>&1; then return 0; fi
  say "building s3s-fs $S3S_FS_VERSION (a local S3 server) with cargo install"
  cargo install --quiet --locked s3s-fs --version "$S3S_FS_VERSION" --features binary
}

install_js() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  local dir
  dir="$(cd "$(dirname "$0")/../.." && pwd)/api/tests/js"
  # npm ci only when the installed tree is missing or older than the lock file.
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
     || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "installing the npm packages of $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

install_deploy_tools() {
  local missing=()
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
  command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
  command -v prometheus-postgres-exporter >/dev/null 2>&1 || missing+=(prometheus-postgres-exporter)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  # Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
  if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  if ! "$DEPLOY_VENV/bin/python" -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1; then
    say "installing helm-python-sdk $HELM_PYTHON_SDK_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $DEPLOY_VENV"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "helm-python-sdk==$HELM_PYTHON_SDK_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(postgres)
for c in "${components[@]}"; do
  case "$c" in
    postgres) install_postgres ;;
    redis) install_redis ;;
    s3) install_s3 ;;
    deploy-tools) install_deploy_tools ;;
    js) install_js ;;
    all) install_postgres; install_redis; install_s3; install_js; install_deploy_tools ;;
    *) say "unknown component: $c (postgres, redis, s3, js, deploy-tools, all)"; exit 2 ;;
  esac
done
