# dirsync: build the release binary, then ship it on a slim Debian with CA certificates.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
COPY migrations migrations
COPY config config
COPY benches benches
RUN cargo build --release --locked --bin dirsync

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/dirsync /usr/local/bin/dirsync
COPY config /etc/dirsync
ENV DIRSYNC__SERVER__LISTEN=0.0.0.0:8080 \
    DIRSYNC__LOG__FORMAT=json
EXPOSE 8080
USER 65534
ENTRYPOINT ["dirsync"]
CMD ["serve"]
