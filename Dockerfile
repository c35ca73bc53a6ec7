# dirsync's container image. Two stages: build the production binary (no emulators, no demo:
# `--no-default-features`), then ship it alone on a slim Debian with CA certificates, as a user
# that is not root.
#
# Configuration is by environment only (DIRSYNC__SECTION__KEY; see docs/configuration.md): at
# least DIRSYNC__DATABASE__URL, and the Graph and sign-in secrets. `serve` applies the database
# migrations at start, before it listens, so a new image upgrades the schema by starting.
# tests/container.rs runs this file's build command, environment, CMD and HEALTHCHECK outside a
# container, so keep them on one line each.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --no-default-features --bin dirsync

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/dirsync --create-home dirsync
COPY --from=build /src/target/release/dirsync /usr/local/bin/dirsync
ENV DIRSYNC__SERVER__LISTEN=0.0.0.0:8080 DIRSYNC__LOG__FORMAT=json
WORKDIR /var/lib/dirsync
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["dirsync", "healthcheck"]
ENTRYPOINT ["dirsync"]
CMD ["serve"]
