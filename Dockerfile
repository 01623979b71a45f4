# hostsdir-broker with dnsmasq, for the Kubernetes examples in
# examples/kubernetes/ (one image for both the supervised and the sidecar
# layout).
#
# NOT BUILT OR TESTED BY THIS REPOSITORY'S CI: the development machines have
# no Docker engine. It is kept deliberately simple; build it with
#   docker build -t hostsdir-broker:dev .
#
# Runs as the non-root user 10001. DHCP needs privileges all the same:
# dnsmasq binds UDP port 67 (NET_BIND_SERVICE), pings an address before
# offering it (NET_RAW) and answers clients that have no address yet through
# the ARP cache (NET_ADMIN). The dnsmasq binary carries those three as file
# capabilities, so the container must be allowed them (Kubernetes:
# capabilities.add, and allowPrivilegeEscalation left true, since no_new_privs
# disables file capabilities) and must use the host network. The broker
# itself needs no capability.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked \
 && install -m 0755 target/release/hostsdir-broker /usr/local/bin/hostsdir-broker

FROM debian:trixie-slim
# dnsmasq-base is dnsmasq without the system service: 2.91 in trixie. 2.90
# (bookworm) crashes on SIGHUP once a host with a `set:` tag, which every
# Ironic entry has, has done DHCP: the build fails on anything older than
# 2.91. libcap2-bin is needed only to set the file capabilities.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends dnsmasq-base ca-certificates libcap2-bin \
 && setcap cap_net_bind_service,cap_net_raw,cap_net_admin+ep /usr/sbin/dnsmasq \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && v="$(/usr/sbin/dnsmasq --version)" \
 && case "$v" in \
      "Dnsmasq version 2.9"[1-9]*|"Dnsmasq version 2."[1-9][0-9][0-9]*|"Dnsmasq version "[3-9]*) ;; \
      *) echo "dnsmasq >= 2.91 is required, got: $v" >&2; exit 1 ;; \
    esac \
 && useradd --system --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin hostsdir-broker \
 && mkdir -p /data /var/lib/dnsmasq /etc/hostsdir-broker \
 && chown 10001:10001 /data /var/lib/dnsmasq
COPY --from=build /usr/local/bin/hostsdir-broker /usr/local/bin/hostsdir-broker

USER 10001:10001
WORKDIR /data
EXPOSE 8787/tcp 67/udp
ENTRYPOINT ["hostsdir-broker"]
CMD ["serve", "--help"]
