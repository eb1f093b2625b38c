#!/usr/bin/env bash
# Backs up Fluxbase: the database (pg_dump custom format, plus its roles without
# passwords), the configuration files and the local storage; then removes backups older
# than RETENTION_DAYS (default 30).
#
#   deploy/scripts/backup.sh local    into $BACKUP_DIR/<timestamp>/
#   deploy/scripts/backup.sh s3       into s3://$BACKUP_S3_BUCKET/$BACKUP_S3_PREFIX/<timestamp>/
#
# Settings (environment, else FLUXBASE_ENV_FILE, default /etc/fluxbase/env):
#   DATABASE_URL                 the database (the server's)
#   BACKUP_DIR                   default /var/backups/fluxbase
#   RETENTION_DAYS               default 30
#   CONFIG_FILES                 default "/etc/fluxbase/env /etc/fluxbase/fluxbase.yaml
#                                /var/lib/fluxbase/fluxbase.yaml" (those that exist)
#   FLUXBASE_STORAGE_PROVIDER    local (default): FLUXBASE_STORAGE_LOCAL_PATH is archived
#   FLUXBASE_STORAGE_LOCAL_PATH  default /var/fluxbase/storage
#   BACKUP_S3_*                  for s3: see s3.sh
# A backup is complete when its SHA256SUMS exists (written last); restore.sh checks it.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
umask 077

HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=settings.sh
. "$HERE/settings.sh"
# shellcheck source=s3.sh
. "$HERE/s3.sh"

usage() { echo "usage: $SCRIPT_NAME local|s3" >&2; exit 2; }
[ $# -eq 1 ] || usage
MODE=$1
case "$MODE" in local | s3) ;; *) usage ;; esac

load_env_file
need pg_dump pg_dumpall pg_restore tar gzip sha256sum date
split_database_url
BACKUP_DIR=${BACKUP_DIR:-/var/backups/fluxbase}
CUTOFF=$(retention_cutoff)
[ "$MODE" = local ] || s3_init

TS=$(date -u +%Y%m%d_%H%M%S)
if [ "$MODE" = local ]; then
  mkdir -p "$BACKUP_DIR"
  WORK="$BACKUP_DIR/$TS.partial"
  mkdir "$WORK" || die "$WORK exists: another backup started this second"
else
  WORK=$(mktemp -d)
fi
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

log "backup $TS of $(redacted_database_url) ($MODE)"

# 1. The database, and the cluster-wide roles its GRANTs and policies name.
pg_dump --format=custom --no-password --file="$WORK/database.dump" --dbname="$PG_CONNINFO" \
  || die "pg_dump failed"
pg_restore --list "$WORK/database.dump" >/dev/null || die "the dump cannot be read back"
pg_dumpall --roles-only --no-role-passwords --no-password --dbname="$PG_CONNINFO" >"$WORK/roles.sql" \
  || die "pg_dumpall --roles-only failed"

# 2. Configuration files, with their absolute paths (restore.sh puts them back there).
read -r -a config_candidates <<<"${CONFIG_FILES:-/etc/fluxbase/env /etc/fluxbase/fluxbase.yaml /var/lib/fluxbase/fluxbase.yaml}"
config_files=()
for f in "${config_candidates[@]}"; do
  case "$f" in /*) ;; *) die "CONFIG_FILES must hold absolute paths (got '$f')" ;; esac
  if [ -f "$f" ]; then config_files+=("${f#/}"); fi
done
if [ ${#config_files[@]} -gt 0 ]; then
  tar -czf "$WORK/config.tar.gz" -C / -- "${config_files[@]}"
  log "configuration: ${config_files[*]/#//}"
else
  log "warning: none of the configuration files exists (${config_candidates[*]}): none archived"
fi

# 3. Local storage (with S3 storage, the bucket's own versioning protects the objects).
provider=${FLUXBASE_STORAGE_PROVIDER:-local}
storage=${FLUXBASE_STORAGE_LOCAL_PATH:-/var/fluxbase/storage}
if [ "$provider" = local ]; then
  if [ -d "$storage" ]; then
    tar -czf "$WORK/storage.tar.gz" -C "$storage" .
    log "storage: $storage ($(find "$storage" -type f | wc -l) files)"
  else
    log "warning: local storage $storage does not exist: none archived"
  fi
else
  log "storage provider is $provider: objects are not in this backup (enable bucket versioning)"
fi

# 4. What this is, then the checksums, last: their presence marks the backup complete.
{
  echo "timestamp=$TS"
  echo "database=$(redacted_database_url)"
  echo "pg_dump=$(pg_dump --version)"
  echo "storage_provider=$provider"
  echo "storage_path=$storage"
} >"$WORK/manifest"
(cd "$WORK" && find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' -printf '%f\n' | sort | xargs sha256sum >SHA256SUMS.tmp \
  && mv SHA256SUMS.tmp SHA256SUMS)

if [ "$MODE" = local ]; then
  mv "$WORK" "$BACKUP_DIR/$TS"
  trap - EXIT
  log "done: $BACKUP_DIR/$TS ($(du -sh "$BACKUP_DIR/$TS" | cut -f1))"
  # Retention: timestamped directories older than the cutoff, and stale partial ones.
  for dir in "$BACKUP_DIR"/*; do
    name=$(basename "$dir")
    is_timestamp "${name%.partial}" || continue
    if [[ "${name%.partial}" < "$CUTOFF" ]]; then
      rm -rf -- "$dir"
      log "removed $name (older than ${RETENTION_DAYS:-30} days)"
    fi
  done
else
  dest="$S3_PREFIX/$TS"
  while IFS= read -r name; do
    s3_put "$WORK/$name" "$dest/$name" || die "upload of $name failed"
  done < <(cd "$WORK" && find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' -printf '%f\n' | sort)
  s3_put "$WORK/SHA256SUMS" "$dest/SHA256SUMS" || die "upload of SHA256SUMS failed"
  log "done: s3://$S3_BUCKET/$dest/"
  keys=$(s3_list "$S3_PREFIX/") || die "cannot list the backups for retention"
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    rest=${key#"$S3_PREFIX"/}
    name=${rest%%/*}
    if is_timestamp "$name" && [[ "$name" < "$CUTOFF" ]]; then
      s3_delete "$key" || die "cannot delete s3://$S3_BUCKET/$key"
      log "removed s3://$S3_BUCKET/$key (older than ${RETENTION_DAYS:-30} days)"
    fi
  done <<<"$keys"
fi
