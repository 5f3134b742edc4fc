# syntax=docker/dockerfile:1
# (The line above selects the Dockerfile frontend that has RUN --mount cache
# mounts; BuildKit, Docker's default builder since 23.0, is required.)
#
# A minimal image of `sluice` for running pipeline steps as pods (Kubeflow
# Pipelines and the like): one fully static binary (musl), CA certificates,
# a non-root user, and nothing else: no shell, no libc, no package manager.
#
#   docker build -t sluice .
#   docker build --build-arg PROFILE=release -t sluice .   # faster build, larger binary
#   docker run --rm -v "$PWD/examples:/work/examples" sluice \
#       run examples/breast-cancer/pipeline.toml --store /work/store
#
# For Kubeflow Pipelines, `sluice export kfp --image IMAGE` writes the
# pipeline definition (docs/cluster.md); its tasks run `command: [sluice]`
# (the KFP launcher replaces the image's ENTRYPOINT and finds `sluice` in
# PATH, set below).
#
# The builder stage runs scripts/build-static, the same script that builds the
# static binary on a Debian/Ubuntu host without Docker, so the two agree.

# ---------------------------------------------------------------- builder
# rust-toolchain.toml pins 1.95.0; the image of exactly that release has it
# installed already (rust:1.95-bookworm follows the newest 1.95.x, and rustup
# would then download 1.95.0 a second time).
FROM rust:1.95.0-bookworm AS builder

# `dist` (fat LTO, one codegen unit, the smallest binary) or `release`.
# `dist` took about 32 min on 2 cores from cold caches, 14 min of it the
# single-threaded LTO link, which peaked at 10 GB of memory: give the
# builder that much, or use `release`.
ARG PROFILE=dist

WORKDIR /src

# The slow, rarely-changing setup first, in a layer of its own that source
# changes do not invalidate: musl-tools (musl-gcc for the C in bundled SQLite,
# aws-lc-sys, mimalloc, zstd) and `file`, then the musl and wasm32-wasip2
# targets for the toolchain rust-toolchain.toml names.
COPY rust-toolchain.toml ./
COPY scripts/build-static scripts/
RUN scripts/build-static --setup-only

COPY . .

# The build. $CARGO_HOME is /usr/local/cargo in the rust image: its registry
# and git folders (crates.io downloads, shared with the nested
# wasm32-wasip2 build of the standard steps) and the target folder are
# BuildKit caches, kept between builds but not in any layer; hence --out,
# which copies the binary out of the cached target folder into the layer.
# sharing=locked: two builds at once would otherwise share one target folder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    scripts/build-static --profile "$PROFILE" --target-dir /src/target --out /out/sluice

# What the final image needs besides the binary, laid out here because
# `scratch` has no shell to run mkdir in:
# - writable folders, given to the user by COPY --chown below: /work (HOME
#   and WORKDIR: the compile cache goes to $HOME/.cache/sluice, its key to
#   $HOME/.config/sluice), /tmp (TMPDIR; sticky and world-writable as usual),
#   and /gcs, /minio, /s3, where the KFP v2 launcher puts input and output
#   artifacts (older KFP backends do not mount volumes there, and a non-root
#   user cannot create folders in /). Group 0 may write too, for platforms
#   that run images under an arbitrary UID in group 0 (OpenShift);
# - /etc/passwd and /etc/group naming the user, for tools that look a UID up
#   (root-owned, unlike the folders above).
RUN mkdir -p /rootfs-rw/work /rootfs-rw/tmp /rootfs-rw/gcs /rootfs-rw/minio /rootfs-rw/s3 /rootfs/etc \
 && chmod 1777 /rootfs-rw/tmp \
 && chmod 0775 /rootfs-rw/work /rootfs-rw/gcs /rootfs-rw/minio /rootfs-rw/s3 \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nsluice:x:65532:65532:sluice:/work:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nsluice:x:65532:\n' > /rootfs/etc/group

# ---------------------------------------------------------------- final
FROM scratch

LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Run ML pipelines whose steps are sandboxed WebAssembly components (static musl build)." \
      org.opencontainers.image.licenses="Apache-2.0"

# Root certificates for TLS to S3 and PostgreSQL (rustls with the platform's
# roots reads SSL_CERT_FILE, set below).
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /rootfs/etc/ /etc/
# The folder contents keep their modes (1777, 0775); --chown gives them to
# the user.
COPY --from=builder --chown=65532:0 /rootfs-rw/ /
COPY --from=builder /out/sluice /usr/local/bin/sluice

# PATH: `scratch` sets none, and `sluice export kfp` writes `command:
# [sluice]`, which the KFP launcher looks up in PATH.
ENV PATH=/usr/local/bin \
    HOME=/work \
    TMPDIR=/tmp \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading
# /etc/passwd.
USER 65532:65532
WORKDIR /work

ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--help"]
