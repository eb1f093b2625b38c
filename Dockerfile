# syntax=docker/dockerfile:1
# Fluxbase production image: the `fluxbase` binary on a small Debian runtime with the
# PostgreSQL client tools and curl that deploy/scripts/backup.sh and restore.sh use.
#
#   docker build -t fluxbase:latest .
#
# The builder's Rust: the toolchain the tests run with; at least the newest rust-version of
# the crates it builds (uuid and actix-web want 1.89; checked by deploy/scripts/check.sh).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of
# the cache mount so that the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fluxbase-api \
    && install -m 0755 target/release/fluxbase /usr/local/bin/fluxbase

# Bookworm, as the builder: same glibc. Its postgresql-client (15) must be at least the
# server's major version for pg_dump (the Compose stack runs PostgreSQL 15).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 fluxbase \
    && useradd --uid 1000 --gid 1000 --home-dir /var/lib/fluxbase --create-home \
       --shell /usr/sbin/nologin fluxbase \
    && install -d -o 1000 -g 1000 -m 0750 /var/fluxbase /var/fluxbase/storage /var/backups/fluxbase
COPY --from=builder /usr/local/bin/fluxbase /usr/local/bin/fluxbase
COPY deploy/scripts/backup.sh deploy/scripts/restore.sh deploy/scripts/s3.sh deploy/scripts/settings.sh \
     /usr/local/lib/fluxbase/
RUN ln -s /usr/local/lib/fluxbase/backup.sh /usr/local/bin/fluxbase-backup \
    && ln -s /usr/local/lib/fluxbase/restore.sh /usr/local/bin/fluxbase-restore

# Production defaults; every one can be overridden with -e / env_file.
ENV FLUXBASE_SERVER_ADDRESS=0.0.0.0:8080 \
    FLUXBASE_LOG_FORMAT=json \
    FLUXBASE_STORAGE_LOCAL_PATH=/var/fluxbase/storage \
    BACKUP_DIR=/var/backups/fluxbase

USER 1000:1000
WORKDIR /var/lib/fluxbase
VOLUME ["/var/fluxbase/storage"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS --max-time 2 http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["/usr/local/bin/fluxbase"]
CMD ["serve"]
