# hostsdir-broker with dnsmasq: one image for both Kubernetes layouts in
# examples/kubernetes/ (supervised: the broker runs dnsmasq; sidecar: the
# same image runs dnsmasq in one container and the broker in another).
#
#   docker build -t hostsdir-broker:dev .        # or: podman build ...
#
# Builds under the default capabilities of `docker build` and `podman build`:
# nothing in it executes a binary that carries file capabilities. (Tested
# with podman; the project's machines have no Docker engine.)
# scripts/test-image.sh builds this file as it is and runs both layouts
# from it, serving DHCP to a real client; see examples/kubernetes/README.md
# ("What the image test proves").
#
# The base images are build arguments, so a site can pin digests or use a
# mirror without editing this file:
#   --build-arg BUILDER_IMAGE=registry.example.com/rust:1-slim-trixie
#   --build-arg RUNTIME_IMAGE=registry.example.com/debian:forky-slim
#
# Why Debian forky (testing) for the runtime, not trixie (stable):
# - dnsmasq: forky has 2.93, trixie 2.91. rackerlabs/understack, the
#   deployment this broker is built for, runs 2.93 from debian:forky; a
#   SIGHUP on 2.93 stalls DHCP 4-6 times less than on 2.91 with thousands
#   of host files (2.91 0.25-0.30 s vs 1.1-1.9 s at 10,000 Ironic files),
#   and its cost no longer grows with every file name the directory has
#   ever held. 2.93 also carries the fix for CVE-2026-2291.
# - The cost: testing moves. Rebuild the image to take updates, and pin the
#   base by digest (RUNTIME_IMAGE=debian@sha256:...) for reproducible builds.
# - Any Debian-like base with dnsmasq >= 2.91 works, e.g.
#   RUNTIME_IMAGE=docker.io/library/debian:trixie-slim (2.91). The build
#   fails on anything older: 2.90 (bookworm) crashes on SIGHUP once a host
#   with a `set:` tag, which every Ironic entry has, has done DHCP.
# The builder is trixie, so the broker needs glibc >= trixie's (2.41): the
#   build runs the broker in the runtime stage and fails if it cannot.
ARG BUILDER_IMAGE=docker.io/library/rust:1-slim-trixie
ARG RUNTIME_IMAGE=docker.io/library/debian:forky-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# Cargo.toml declares [[bench]] targets: cargo refuses a manifest whose
# target files are missing, even when building only the binary, so benches/
# comes along. Keep .dockerignore (an allow-list) in step with these lines.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
# The dependencies first, in a layer of their own that only Cargo.toml,
# Cargo.lock and benches/ invalidate: built against an empty src/, so a
# change to src/ recompiles only this crate. Plain RUN steps, no
# `--mount=type=cache`, so the legacy Docker builder can build it too.
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin hostsdir-broker \
 && rm -r src
COPY src ./src
# COPY keeps the files' own modification times, which can be older than
# the empty crate just built: touched, so cargo cannot take the empty
# build for an up-to-date one.
RUN find src -type f -exec touch {} + \
 && cargo build --release --locked --bin hostsdir-broker \
 && install -m 0755 target/release/hostsdir-broker /usr/local/bin/hostsdir-broker

FROM ${RUNTIME_IMAGE}
# dnsmasq-base is dnsmasq without the system service. Its package depends
# on systemd | systemd-standalone-sysusers: the standalone one (1 MB)
# instead of all of systemd. libcap2-bin only sets the file capabilities
# and is removed again. No ca-certificates: the broker serves, and
# `hostsdir-broker ctl` carries its own CA roots (webpki-roots).
#
# The version gate runs dnsmasq BEFORE setcap: afterwards executing it
# needs NET_ADMIN, NET_RAW and NET_BIND_SERVICE in the bounding set, which
# a build step under Docker's default capabilities does not have
# ("Operation not permitted"). After setcap, getcap checks the result.
#
# Runs as the non-root user 10001. dnsmasq gets what DHCP needs as file
# capabilities: NET_BIND_SERVICE (UDP port 67), NET_RAW (ping before
# offering an address), NET_ADMIN (answering clients that have no address
# yet through the ARP cache). The container must allow them
# (capabilities.add) and must not set no_new_privs
# (allowPrivilegeEscalation: true), which disables file capabilities. The
# broker itself needs no capability.
# No pipes in these steps: /bin/sh has no pipefail, and podman's default
# (OCI) image format ignores SHELL.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      dnsmasq-base systemd-standalone-sysusers libcap2-bin \
 && banner="$(/usr/sbin/dnsmasq --version)" \
 && v="${banner#Dnsmasq version }" && v="${v%% *}" \
 && case "$v" in [0-9]*.[0-9]*) ;; *) v=unknown ;; esac \
 && if [ "$v" = unknown ] || dpkg --compare-versions "$v" lt 2.91; then \
      echo "dnsmasq >= 2.91 is required (2.90 crashes on SIGHUP with Ironic's entries); this base has dnsmasq $v" >&2; \
      exit 1; \
    fi \
 && echo "dnsmasq $v" \
 && setcap cap_net_bind_service,cap_net_raw,cap_net_admin+ep /usr/sbin/dnsmasq \
 && case "$(getcap /usr/sbin/dnsmasq)" in \
      *" cap_net_bind_service,cap_net_admin,cap_net_raw=ep") ;; \
      *) echo "setcap did not give dnsmasq its capabilities: $(getcap /usr/sbin/dnsmasq)" >&2; exit 1 ;; \
    esac \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
      /var/log/apt /var/log/dpkg.log \
 && useradd --no-log-init --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin hostsdir-broker \
 && mkdir -p /data /var/lib/dnsmasq /etc/hostsdir-broker \
 && chown 10001:10001 /data /var/lib/dnsmasq
COPY --from=build /usr/local/bin/hostsdir-broker /usr/local/bin/hostsdir-broker
# Fails the build when the broker cannot run on this base (e.g. an older
# glibc than the builder's), or is not the real one.
RUN v="$(hostsdir-broker --version)" \
 && case "$v" in \
      "hostsdir-broker "[0-9]*) echo "$v" ;; \
      *) echo "hostsdir-broker --version printed '$v'" >&2; exit 1 ;; \
    esac

USER 10001:10001
WORKDIR /data
EXPOSE 8787/tcp 67/udp
ENTRYPOINT ["hostsdir-broker"]
CMD ["serve", "--help"]
