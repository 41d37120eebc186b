# Herald's container image: built with the Rust toolchain, run on a small Debian base as an
# unprivileged user. Build: docker build -t herald .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin herald \
 && strip target/release/herald

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/herald --create-home herald
COPY --from=build /src/target/release/herald /usr/local/bin/herald
COPY catalog /etc/herald/catalog
USER 10001
WORKDIR /var/lib/herald
ENV HERALD_SERVER__LISTEN=0.0.0.0:8080 \
    HERALD_CATALOG__DIR=/etc/herald/catalog \
    HERALD_LOG_FORMAT=json
EXPOSE 8080
# `herald health` asks the running service's /readyz (Azure Container Apps uses its own probes,
# set in infra/main.bicep; this serves `docker run` and other runtimes).
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
  CMD ["herald", "health", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["herald"]
CMD ["serve"]
