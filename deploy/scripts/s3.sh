# shellcheck shell=bash
# A small S3 client for backup.sh and restore.sh (sourced): curl's built-in AWS Signature
# V4 (curl 7.75 or newer; Debian 12 has 7.88) against any S3 endpoint (AWS, MinIO, Ceph, R2...),
# path-style URLs. Single PUTs, so each file is at most 5 GiB. Keys and secrets reach curl
# through its config on stdin, never its command line.
#
# Settings: BACKUP_S3_BUCKET (required), BACKUP_S3_PREFIX (default "fluxbase"), and
# BACKUP_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY / _REGION, each defaulting to the server's
# FLUXBASE_S3_* value (region: us-east-1).

# sha256 of the empty body (GET, DELETE, list).
S3_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# Largest object one PUT may create.
S3_MAX_PUT_BYTES=$((5 * 1024 * 1024 * 1024))

s3_init() {
  need curl sha256sum
  curl --help all 2>/dev/null | grep -q -- '--aws-sigv4' \
    || die "this curl has no --aws-sigv4 (curl 7.75 or newer is needed for S3)"
  S3_ENDPOINT=${BACKUP_S3_ENDPOINT:-${FLUXBASE_S3_ENDPOINT:-}}
  S3_BUCKET=${BACKUP_S3_BUCKET:-}
  S3_PREFIX=${BACKUP_S3_PREFIX:-fluxbase}
  S3_REGION=${BACKUP_S3_REGION:-${FLUXBASE_S3_REGION:-us-east-1}}
  S3_ACCESS_KEY=${BACKUP_S3_ACCESS_KEY:-${FLUXBASE_S3_ACCESS_KEY:-}}
  S3_SECRET_KEY=${BACKUP_S3_SECRET_KEY:-${FLUXBASE_S3_SECRET_KEY:-}}
  [ -n "$S3_ENDPOINT" ] || die "set BACKUP_S3_ENDPOINT (or FLUXBASE_S3_ENDPOINT), e.g. https://s3.eu-west-1.amazonaws.com"
  [ -n "$S3_BUCKET" ] || die "set BACKUP_S3_BUCKET"
  if [ -z "$S3_ACCESS_KEY" ] || [ -z "$S3_SECRET_KEY" ]; then
    die "set BACKUP_S3_ACCESS_KEY and BACKUP_S3_SECRET_KEY (or the FLUXBASE_S3_* ones)"
  fi
  [[ "$S3_BUCKET" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "BACKUP_S3_BUCKET '$S3_BUCKET' is not a valid bucket name"
  [[ "$S3_PREFIX" =~ ^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$ ]] \
    || die "BACKUP_S3_PREFIX '$S3_PREFIX' may hold only letters, digits, . _ - and inner /"
  [[ "$S3_REGION" =~ ^[a-z0-9-]+$ ]] || die "BACKUP_S3_REGION '$S3_REGION' is not a region name"
  case "$S3_ENDPOINT" in
    http://* | https://*) ;;
    *) S3_ENDPOINT="https://$S3_ENDPOINT" ;;
  esac
  S3_ENDPOINT=${S3_ENDPOINT%/}
}

# Percent-encodes everything but unreserved characters (and "/" when $2 is "path").
s3_encode() {
  local s=$1 keep_slash=${2:-} out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [A-Za-z0-9._~-]) out+=$c ;;
      /) if [ "$keep_slash" = path ]; then out+=/; else out+=%2F; fi ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# One signed request: s3_curl METHOD KEY QUERY PAYLOAD_SHA256 [curl args...]; the response
# body goes to stdout unless the args redirect it.
s3_curl() {
  local method=$1 key=$2 query=$3 sha=$4
  shift 4
  local url="$S3_ENDPOINT/$S3_BUCKET"
  [ -z "$key" ] || url+="/$(s3_encode "$key" path)"
  [ -z "$query" ] || url+="?$query"
  printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" \
    | curl -K - --silent --show-error --fail-with-body --retry 3 --retry-delay 2 \
      --aws-sigv4 "aws:amz:$S3_REGION:s3" -H "x-amz-content-sha256: $sha" \
      -X "$method" "$@" "$url"
}

# Uploads FILE as KEY; the server checks the body against its sha256.
s3_put() {
  local file=$1 key=$2 size
  size=$(stat -c %s "$file")
  [ "$size" -le "$S3_MAX_PUT_BYTES" ] \
    || die "$file is $size bytes: over the 5 GiB of one S3 PUT (multipart uploads are not implemented)"
  s3_curl PUT "$key" "" "$(sha256sum "$file" | cut -d' ' -f1)" --upload-file "$file" --output /dev/null
}

# Downloads KEY into FILE.
s3_get() {
  s3_curl GET "$1" "" "$S3_EMPTY_SHA256" --output "$2"
}

s3_delete() {
  s3_curl DELETE "$1" "" "$S3_EMPTY_SHA256" --output /dev/null
}

# Prints every key under PREFIX, one a line (ListObjectsV2, all pages).
s3_list() {
  local prefix=$1 token='' query body
  while :; do
    query="list-type=2&prefix=$(s3_encode "$prefix")"
    [ -z "$token" ] || query+="&continuation-token=$(s3_encode "$token")"
    body=$(s3_curl GET "" "$query" "$S3_EMPTY_SHA256") || die "cannot list s3://$S3_BUCKET/$prefix: $body"
    grep -o '<Key>[^<]*</Key>' <<<"$body" | sed -e 's#^<Key>##' -e 's#</Key>$##' -e 's/&amp;/\&/g' || true
    grep -q '<IsTruncated>true</IsTruncated>' <<<"$body" || break
    token=$(grep -o '<NextContinuationToken>[^<]*</NextContinuationToken>' <<<"$body" \
      | sed -e 's#<[^>]*>##g') || die "truncated listing without a continuation token"
  done
}
