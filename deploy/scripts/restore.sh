#!/usr/bin/env bash
# Restores a backup made by backup.sh: roles, database, configuration files, local storage.
#
#   deploy/scripts/restore.sh 20251031_140530        from $BACKUP_DIR/20251031_140530/
#   deploy/scripts/restore.sh 20251031_140530 s3     from s3://$BACKUP_S3_BUCKET/$BACKUP_S3_PREFIX/...
#
# Stop Fluxbase first. The target database (DATABASE_URL) must exist and be empty; connect
# as a superuser to restore the roles' attributes and the DDL event trigger (else see
# deploy/README.md, "Restore"). Nothing already there is overwritten or deleted unless
# RESTORE_FORCE=1: then the database's objects are replaced (pg_restore --clean) and the
# configuration files and storage directory that are there are moved aside, suffixed
# ".pre-restore-<timestamp>". Every check is made before anything is changed.
#
# Settings: as backup.sh, plus RESTORE_ROOT (default /: where the configuration files go
# back, under their absolute paths), RESTORE_FORCE, RESTORE_SKIP_ROLES=1 (roles made by hand).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
umask 077

HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=settings.sh
. "$HERE/settings.sh"
# shellcheck source=s3.sh
. "$HERE/s3.sh"

usage() { echo "usage: $SCRIPT_NAME <timestamp> [s3]   (timestamp as 20251031_140530)" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
TS=$1
MODE=${2:-local}
is_timestamp "$TS" || usage
case "$MODE" in local | s3) ;; *) usage ;; esac

load_env_file
need pg_restore psql tar gzip sha256sum
split_database_url
BACKUP_DIR=${BACKUP_DIR:-/var/backups/fluxbase}
RESTORE_ROOT=${RESTORE_ROOT:-/}
FORCE=${RESTORE_FORCE:-0}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. Fetch and verify.
if [ "$MODE" = local ]; then
  SRC="$BACKUP_DIR/$TS"
  [ -d "$SRC" ] || die "no backup $SRC (backups there: $(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -printf '%f ' 2>/dev/null))"
  [ -f "$SRC/SHA256SUMS" ] || die "$SRC has no SHA256SUMS: the backup is incomplete"
else
  s3_init
  SRC="$WORK/backup"
  mkdir "$SRC"
  prefix="$S3_PREFIX/$TS"
  s3_get "$prefix/SHA256SUMS" "$SRC/SHA256SUMS" \
    || die "no complete backup at s3://$S3_BUCKET/$prefix/ (SHA256SUMS missing)"
  while read -r _ name; do
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "unexpected file name in SHA256SUMS: $name"
    s3_get "$prefix/$name" "$SRC/$name" || die "download of $name failed"
  done <"$SRC/SHA256SUMS"
fi
(cd "$SRC" && sha256sum --quiet --strict -c SHA256SUMS >&2) || die "checksums do not match: the backup is damaged"
[ -f "$SRC/database.dump" ] || die "the backup has no database.dump"
log "backup $TS ($MODE) verified"

# 2. Checks, before anything changes.
existing=$(psql --no-password --dbname="$PG_CONNINFO" -XAtq -v ON_ERROR_STOP=1 -c \
  "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname NOT IN ('pg_catalog','information_schema')
     AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'") \
  || die "cannot connect to the target database $(redacted_database_url)"
if [ "$existing" != 0 ] && [ "$FORCE" != 1 ]; then
  die "the target database has $existing relations: restore into an empty database, or set RESTORE_FORCE=1 to replace them"
fi

config_tmp="$WORK/config"
config_moves=()
if [ -f "$SRC/config.tar.gz" ]; then
  mkdir "$config_tmp"
  tar -xzf "$SRC/config.tar.gz" -C "$config_tmp"
  while IFS= read -r rel; do
    target="${RESTORE_ROOT%/}/$rel"
    if [ -e "$target" ] && ! cmp -s "$config_tmp/$rel" "$target"; then
      [ "$FORCE" = 1 ] || die "$target exists and differs from the backup's: set RESTORE_FORCE=1 to replace it (kept as $target.pre-restore-$TS)"
      config_moves+=("$target")
    fi
  done < <(cd "$config_tmp" && find . -type f -printf '%P\n')
fi

storage=${FLUXBASE_STORAGE_LOCAL_PATH:-/var/fluxbase/storage}
if [ -f "$SRC/storage.tar.gz" ] && [ -d "$storage" ] && [ -n "$(ls -A "$storage")" ] && [ "$FORCE" != 1 ]; then
  die "storage directory $storage is not empty: set RESTORE_FORCE=1 to move it aside ($storage.pre-restore-$TS)"
fi

# 3. Roles (cluster-wide: pg_dump does not carry them). Those that exist are kept.
if [ "${RESTORE_SKIP_ROLES:-0}" != 1 ]; then
  # Never re-apply the attributes of the role we are connected as (a source login role
  # without SUPERUSER would demote the restoring superuser halfway).
  me=$(psql --no-password --dbname="$PG_CONNINFO" -XAtq -c 'SELECT quote_ident(current_user)')
  grep -v -F "ALTER ROLE $me WITH " "$SRC/roles.sql" >"$WORK/roles.sql" || true
  if ! psql --no-password --dbname="$PG_CONNINFO" -Xq -v ON_ERROR_STOP=0 -f "$WORK/roles.sql" \
    >"$WORK/roles.out" 2>"$WORK/roles.err"; then
    cat "$WORK/roles.err" >&2
    die "applying roles.sql failed"
  fi
  if grep 'ERROR:' "$WORK/roles.err" | grep -v 'role ".*" already exists' >&2; then
    die "roles.sql had errors (above); restore as a superuser, or create the roles yourself and set RESTORE_SKIP_ROLES=1"
  fi
  log "roles restored"
fi

# 4. The database, in one transaction: all of it or nothing.
clean=()
[ "$FORCE" != 1 ] || clean=(--clean --if-exists)
pg_restore --no-password --exit-on-error --single-transaction "${clean[@]}" \
  --dbname="$PG_CONNINFO" "$SRC/database.dump" || die "pg_restore failed: nothing was restored"
log "database restored into $(redacted_database_url)"

# 5. Configuration files, then storage.
if [ -d "$config_tmp" ]; then
  for target in "${config_moves[@]}"; do
    mv -- "$target" "$target.pre-restore-$TS"
  done
  (cd "$config_tmp" && find . -type f -printf '%P\n') | while IFS= read -r rel; do
    target="${RESTORE_ROOT%/}/$rel"
    mkdir -p "$(dirname "$target")"
    if ! [ -e "$target" ]; then
      cp -p -- "$config_tmp/$rel" "$target"
    fi
  done
  log "configuration restored under $RESTORE_ROOT"
fi
if [ -f "$SRC/storage.tar.gz" ]; then
  if [ -d "$storage" ] && [ -n "$(ls -A "$storage")" ]; then
    mv -- "$storage" "$storage.pre-restore-$TS"
  fi
  mkdir -p "$storage"
  tar -xzf "$SRC/storage.tar.gz" -C "$storage"
  log "storage restored into $storage ($(find "$storage" -type f | wc -l) files)"
fi
log "done: start Fluxbase (it recreates its replication slot; the target needs wal_level=logical)"
