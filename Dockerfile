# The processor image: built in a Rust image, run from a slim Debian one.
#   docker build -t personalizer:local .
FROM rust:1.95-bookworm AS build
# librdkafka and RocksDB compile from source: cmake, and libclang for the bindings;
# librdkafka links the system's OpenSSL for TLS to the brokers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libclang-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin personalizer

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/personalizer personalizer \
 && mkdir -p /var/lib/personalizer \
 && chown personalizer /var/lib/personalizer
COPY --from=build /src/target/release/personalizer /usr/local/bin/personalizer
COPY config/personalizer.toml /etc/personalizer/personalizer.toml
USER 10001
ENV PERSONALIZER_STATE__DIR=/var/lib/personalizer
VOLUME ["/var/lib/personalizer"]
EXPOSE 8080
ENTRYPOINT ["personalizer"]
CMD ["run", "--config", "/etc/personalizer/personalizer.toml"]
