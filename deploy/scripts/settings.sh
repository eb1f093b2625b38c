# shellcheck shell=bash
# Settings shared by backup.sh and restore.sh (sourced, not run): logging, the environment
# file, and the database connection without its password on any command line.

# Name of the running script, for log lines.
SCRIPT_NAME=$(basename "$0")

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Exits naming the command and how to install it when it is missing.
need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 \
      || die "$cmd not found: install it (Debian: apt-get install postgresql-client curl tar gzip coreutils)"
  done
}

# Reads KEY=VALUE lines of FLUXBASE_ENV_FILE (default /etc/fluxbase/env, the systemd unit's
# EnvironmentFile) into the environment, without evaluating them; variables already set win.
load_env_file() {
  local file=${FLUXBASE_ENV_FILE:-/etc/fluxbase/env} line key value
  [ -r "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#export }
    [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    if [[ "$value" =~ ^\"(.*)\"$ ]] || [[ "$value" =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    if [ -z "${!key+set}" ]; then
      export "$key=$value"
    fi
  done < "$file"
}

# Decodes %XX escapes (URL userinfo); a backslash stays a backslash.
url_decode() {
  local s=${1//\\/\\\\}
  printf '%b' "${s//%/\\x}"
}

# DATABASE_URL as PG_CONNINFO (the URL without its password) and PGPASSWORD (exported), so
# that the password never shows in `ps`. A key=value connection string is used as it is.
split_database_url() {
  local url=${DATABASE_URL:?DATABASE_URL is not set (the database to back up or restore into)}
  if [[ "$url" =~ ^(postgres(ql)?://)([^:@/]*):([^@/]*)@(.*)$ ]]; then
    PG_CONNINFO="${BASH_REMATCH[1]}${BASH_REMATCH[3]}@${BASH_REMATCH[5]}"
    PGPASSWORD=$(url_decode "${BASH_REMATCH[4]}")
    export PGPASSWORD
  else
    PG_CONNINFO=$url
  fi
  export PG_CONNINFO
}

# The database URL with any password replaced by ***, for logs and manifests.
redacted_database_url() {
  printf '%s' "${DATABASE_URL:-}" | sed -E 's#^(postgres(ql)?://[^:@/]*):[^@/]*@#\1:***@#'
}

# Validates RETENTION_DAYS (default 30) and prints the cutoff timestamp: backups named
# before it are removed.
retention_cutoff() {
  local days=${RETENTION_DAYS:-30}
  if ! [[ "$days" =~ ^[0-9]+$ ]] || [ "$days" -lt 1 ]; then
    die "RETENTION_DAYS must be a whole number of days, at least 1 (got '$days')"
  fi
  date -u -d "-$days days" +%Y%m%d_%H%M%S
}

# A backup's name: its UTC start time, as the runbook's `restore.sh 20251031_140530`.
is_timestamp() { [[ "$1" =~ ^[0-9]{8}_[0-9]{6}$ ]]; }
