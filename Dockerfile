# syntax=docker/dockerfile:1
# Build: docker build -t byoc-bridge .
# Run:   docker run -p 8080:8080 -v byoc-data:/data byoc-bridge

FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=byoc-target \
    cargo build --release --locked && cp target/release/byoc-bridge /usr/local/bin/byoc-bridge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin byoc \
    && mkdir -p /data && chown byoc /data
COPY --from=build /usr/local/bin/byoc-bridge /usr/local/bin/byoc-bridge
USER byoc
WORKDIR /data
VOLUME ["/data"]
ENV BYOC__SERVER__HOST=0.0.0.0 \
    BYOC__SECURITY__DATA_DIR=/data \
    BYOC__DATABASE__URL=sqlite:///data/byoc-bridge.db \
    BYOC__TELEMETRY__LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["byoc-bridge", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["byoc-bridge"]
CMD ["serve"]
