# Strait's images, one target each:
#
#   docker build --target proxy      -t docker.io/strait/strait-proxy:0.1.0 .
#   docker build --target controller -t docker.io/strait/strait-controller:0.1.0 .
#   docker build --target testapp    -t docker.io/strait/strait-testapp:0.1.0 .
#
# The `build` stage compiles what ships: strait-proxy through
# scripts/build-dist.sh (profile `dist`, glibc linked statically, optimised
# with a training profile: the binary bench/run.sh measures), the controller
# and the test app with profile `dist`, also static. The final images hold
# one static binary and the CA certificates (the proxy image also carries
# iptables, for its init container): no shell, no package manager.
#
# Where the binaries were built outside (tests/cluster/images.sh does this
# with buildah, on machines that cannot pull a Rust image), pass
# `--build-arg BINARIES=prebuilt`: the `prebuilt` stage takes them from
# target/image/ instead, and the final stages are the same.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG BINARIES=build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates iptables \
    && scripts/build-dist.sh \
    && RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --profile dist \
         --target "$(rustc -vV | sed -n 's/^host: //p')" -p strait-control-plane -p strait-testapp \
    && mkdir -p /out \
    && cp "$(scripts/build-dist.sh --path)" /out/ \
    && cp target/*/dist/strait-controller target/*/dist/strait-testapp /out/ \
    && cp /etc/ssl/certs/ca-certificates.crt /out/ \
    && scripts/iptables-rootfs.sh /out/iptables

FROM scratch AS prebuilt
COPY target/image/ /out/

FROM ${BINARIES} AS binaries

# The data-plane proxy. Runs as uid 2102: iptables leaves that user's own
# traffic alone (docs/architecture.md). It also carries Debian's iptables
# (nf_tables) with the libraries it loads, for `strait-proxy init`, the
# injected init container; still no shell or package manager.
FROM scratch AS proxy
COPY --from=binaries /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binaries /out/iptables/ /
COPY --from=binaries /out/strait-proxy /usr/local/bin/strait-proxy
USER 2102:2102
EXPOSE 4140 4143 4191
ENTRYPOINT ["/usr/local/bin/strait-proxy"]

# The control plane.
FROM scratch AS controller
COPY --from=binaries /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binaries /out/strait-controller /usr/local/bin/strait-controller
USER 65532:65532
EXPOSE 8086 8080 9443 9990
ENTRYPOINT ["/usr/local/bin/strait-controller"]

# The echo app of the cluster tests and the cluster demo.
FROM scratch AS testapp
COPY --from=binaries /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binaries /out/strait-testapp /usr/local/bin/strait-testapp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/strait-testapp"]
CMD ["serve"]
