#!/usr/bin/env bash
# The monitoring examples against real Prometheus tools and a real broker:
#
#   1. the alert rules (examples/monitoring/hostsdir-broker-rules.yml, the
#      one source) and the PrometheusRule generated from it: promtool check
#      rules on both, generate.sh --check (the committed PrometheusRule is
#      up to date), promtool test rules (every alert fires and clears);
#      every alert has its runbook in docs/monitoring.md; the Grafana
#      dashboard is well-formed; the ServiceMonitor selects the Service of
#      the Kubernetes layouts;
#   2. a real broker over HTTPS supervising a real dnsmasq 2.91, in a network
#      namespace of its own (loopback, and a veth pair for DHCP), given some
#      traffic: `promtool check metrics` on its /metrics must be clean;
#   3. Debian's prometheus scrapes it (1 s interval, temporary storage, the
#      rules loaded): every metric, matcher and label the alerts and the
#      dashboard use must be in the scraped data, every alert expression and
#      every panel query must run (panels must return data), Prometheus must
#      evaluate every rule without error, exactly the alerts this traffic
#      should raise must be active (a file dnsmasq would misread; the 3-day
#      test certificate), the certificate's expiry in Prometheus must be the
#      certificate's own; then the broker is stopped and HostsdirBrokerDown's
#      expression must return it.
#
# Installs prometheus (with promtool), python3-yaml and openssl from Debian
# when missing; builds the broker (`cargo build`) and dnsmasq 2.91
# (scripts/build-dnsmasq.sh) when missing. Needs root (network namespace).
# Every process, the namespace and the temporary directory are removed on
# any exit. The last line is `monitoring: N checks passed`.
#
#   scripts/test-monitoring.sh
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
mon="$top/examples/monitoring"
rules="$mon/hostsdir-broker-rules.yml"
dashboard="$mon/grafana-dashboard.json"
doc="$top/docs/monitoring.md"
checker="$top/scripts/check-monitoring.py"
started=$(date +%s)
checks=0

fail() { echo "test-monitoring: FAIL: $*" >&2; exit 1; }
pass() { checks=$((checks + 1)); echo "test-monitoring: ok: $*"; }
# Runs the Python checker (Debian's python3: it has python3-yaml) and adds
# the checks it passed.
run_checker() {
    local out
    out=$("${netns[@]}" /usr/bin/python3 "$checker" "$@") || { echo "$out"; fail "check-monitoring.py $1"; }
    echo "$out"
    local n
    n=$(sed -n 's/^check-monitoring: \([0-9]*\) checks passed$/\1/p' <<<"$out")
    [[ -n "$n" ]] || fail "check-monitoring.py $1 printed no count"
    checks=$((checks + n))
}

[[ $(id -u) -eq 0 ]] || fail "run as root: the broker and dnsmasq run in a network namespace"

# --- tools ----------------------------------------------------------------
missing=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    echo "test-monitoring: installing ${missing[*]} from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "cannot install ${missing[*]} (apt-get install)"
fi
echo "test-monitoring: $(promtool --version 2>&1 | head -1)"
dnsmasq_bin="$top/target/dnsmasq-2.91/dnsmasq"
if [[ ! -x "$dnsmasq_bin" ]]; then
    scripts/build-dnsmasq.sh 2.91 || fail "cannot build dnsmasq 2.91 (scripts/build-dnsmasq.sh 2.91)"
fi
cargo build --quiet --bin hostsdir-broker || fail "cargo build failed"
broker_bin="$top/target/debug/hostsdir-broker"

# --- 1. the rules, their tests, the docs, the dashboard -------------------
netns=()
promtool check rules "$rules" || fail "promtool check rules $rules"
pass "promtool check rules: the plain rules file"
"$mon/generate.sh" --check || fail "the committed PrometheusRule is stale"
pass "the committed PrometheusRule is what generate.sh makes from the rules file"
work=$(mktemp -d /tmp/test-monitoring.XXXXXX)
ns="hdb-mon-$$"
cleanup() {
    local rc=$?
    for pid in ${prom_pid:-} ${broker_pid:-}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${prom_pid:-} ${broker_pid:-}; do
        # The broker stops dnsmasq and exits within its 10 s shutdown limit.
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The PrometheusRule's spec, checked by promtool as a rules file.
/usr/bin/python3 - "$mon/prometheusrule.yaml" "$work/spec-rules.yml" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule", doc.get("kind")
assert doc["metadata"]["name"] and doc["metadata"]["namespace"], doc["metadata"]
yaml.safe_dump(doc["spec"], open(sys.argv[2], "w"))
EOF
promtool check rules "$work/spec-rules.yml" || fail "promtool check rules on the PrometheusRule's spec"
pass "promtool check rules: the PrometheusRule's spec (monitoring.coreos.com/v1)"
(cd "$mon" && promtool test rules hostsdir-broker-rules.test.yml) || fail "promtool test rules"
pass "promtool test rules: every alert's unit tests"
run_checker static "$rules" "$mon/hostsdir-broker-rules.test.yml" "$doc" "$dashboard"
run_checker servicemonitor "$mon/servicemonitor.yaml" "$top"/examples/kubernetes/{supervised,sidecar}.yaml

# --- 2. a broker supervising dnsmasq, over HTTPS --------------------------
chmod 755 "$work"  # dnsmasq reads the directories as nobody
ip netns add "$ns"
netns=(ip netns exec "$ns")
ip -n "$ns" link set lo up
ip -n "$ns" link add hdbmon0 type veth peer name hdbmon1
ip -n "$ns" addr add 10.254.77.1/24 dev hdbmon0
ip -n "$ns" link set hdbmon1 up
ip -n "$ns" link set hdbmon0 up

# A CA and a server certificate valid for 3 days (so the expiry alert's
# expression has something to find).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=test-monitoring CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null \
    || fail "openssl: cannot make the CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null || fail "openssl: cannot make the key"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 3 -extfile "$work/ext" -out "$work/tls.crt" 2>/dev/null || fail "openssl: cannot sign the certificate"

mkdir -p "$work/hosts" "$work/opts"
"${netns[@]}" "$broker_bin" serve --listen 127.0.0.1:0 \
    --hosts-dir "$work/hosts" --opts-dir "$work/opts" --lease-file "$work/leases" \
    --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
    --reload-budget-percent 25 --poll-interval-ms 200 \
    -- "$dnsmasq_bin" --keep-in-foreground --conf-file=/dev/null --no-hosts --no-resolv \
    --port=0 --bind-interfaces --interface=hdbmon0 --dhcp-range=10.254.77.100,10.254.77.200,12h \
    --dhcp-hostsdir="$work/hosts" --dhcp-optsdir="$work/opts" --dhcp-leasefile="$work/leases" \
    --log-facility="$work/dnsmasq.log" \
    > "$work/broker.out" 2> "$work/broker.err" &
broker_pid=$!
# The listening line comes once the directories are scanned and dnsmasq runs.
for _ in $(seq 300); do
    grep -q '^listening on ' "$work/broker.out" && break
    kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.err" >&2; fail "the broker exited at start"; }
    sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/broker.out")
[[ "$url" == https://127.0.0.1:* ]] || { cat "$work/broker.err" >&2; fail "no https listening line within 30 s"; }
port=${url##*:}
curl_() { "${netns[@]}" curl -sS --cacert "$work/ca.pem" "$@"; }
# code METHOD PATH [BODY]: prints the status code.
code() {
    local body=${3:-}
    curl_ -o "$work/last.json" -w '%{http_code}' -X "$1" -H 'content-type: application/json' \
        ${body:+--data "$body"} "$url$2"
}
expect() {
    local want=$1 got
    shift
    got=$(code "$@") || fail "$1 $2: curl failed"
    [[ "$got" == "$want" ]] || fail "$1 $2 answered $got, not $want: $(cat "$work/last.json")"
}
dnsmasq_state=$(curl_ "$url/v1/status" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)["dnsmasq"]; print(d["running"], d["version"])')
[[ "$dnsmasq_state" == "True 2.91" ]] || fail "dnsmasq 2.91 is not running under the broker: $dnsmasq_state"
pass "the broker serves HTTPS and supervises dnsmasq 2.91"

# --- 3. Prometheus ---------------------------------------------------------
prom_port=$("${netns[@]}" /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $rules
scrape_configs:
  - job_name: hostsdir-broker
    scheme: https
    tls_config:
      ca_file: $work/ca.pem
    static_configs:
      - targets: ['127.0.0.1:$port']
EOF
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool check config"
"${netns[@]}" prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn > "$work/prometheus.log" 2>&1 &
prom_pid=$!
prom="http://127.0.0.1:$prom_port"
for _ in $(seq 300); do
    "${netns[@]}" curl -sf "$prom/-/ready" >/dev/null 2>&1 && break
    kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log" >&2; fail "prometheus exited at start"; }
    sleep 0.1
done
"${netns[@]}" curl -sf "$prom/-/ready" >/dev/null || fail "prometheus not ready within 30 s"
run_checker wait "$prom" hostsdir-broker 2

# Traffic: creates, a shadowing replace, a delete with a reload, a conflict,
# an invalid value, options, reads; a file written behind the broker's back
# that dnsmasq would misread.
expect 201 PUT /v1/hosts/node-1 '{"macs":["52:54:00:00:77:01"],"set_tags":["node-1","ironic"]}'
expect 201 PUT /v1/hosts/node-2 '{"macs":["52:54:00:00:77:02"],"ipv4":"10.254.77.20"}'
expect 201 PUT /v1/options/node-1 '{"lines":["tag:node-1,67,pxelinux.0"]}'
expect 200 PUT /v1/hosts/node-1 '{"macs":["52:54:00:00:77:01"],"set_tags":["node-1","ironic","cleaning"]}'
expect 204 DELETE '/v1/hosts/node-2?wait=reload'
expect 409 PUT /v1/hosts/node-3 '{"macs":["52:54:00:00:77:01"]}'
expect 400 PUT /v1/hosts/node-4 '{"macs":["not-a-mac"]}'
expect 200 GET /v1/hosts
expect 200 GET /v1/status
printf 'this is not a dhcp-host line\n' > "$work/hosts/legacy-bad"
for _ in $(seq 100); do
    curl_ "$url/v1/status" | grep -q legacy-bad && break
    sleep 0.1
done
curl_ "$url/v1/status" | grep -q legacy-bad || fail "the broker did not report the bad file within 10 s"
expect 200 POST '/v1/reload?wait=reload'
pass "traffic: 9 requests answered as expected, and a file dnsmasq would misread"
# dnsmasq itself read the entries and misread the file the broker flagged.
grep -q "read $work/hosts/node-1\$" "$work/dnsmasq.log" \
    || { cat "$work/dnsmasq.log" >&2; fail "dnsmasq's log does not show it reading hosts/node-1"; }
grep -q "bad .* of $work/hosts/legacy-bad\$" "$work/dnsmasq.log" \
    || { cat "$work/dnsmasq.log" >&2; fail "dnsmasq's log does not show it misreading hosts/legacy-bad"; }
pass "dnsmasq read the entries, and misread the file the broker reports as a problem"

curl_ "$url/metrics" > "$work/metrics.txt"
promtool check metrics < "$work/metrics.txt" || fail "promtool check metrics is not clean on /metrics"
pass "promtool check metrics: /metrics is clean ($(grep -c '^# TYPE' "$work/metrics.txt") metrics)"
curl_ -H 'Accept: application/openmetrics-text; version=1.0.0' "$url/metrics" > "$work/metrics.om"
tail -1 "$work/metrics.om" | grep -qx '# EOF' || fail "/metrics does not answer OpenMetrics when asked"
pass "/metrics answers OpenMetrics to a scraper that asks for it"

# Prometheus has seen the traffic once the bad file is in its data, and
# rate() over a minute needs a few more samples of each new series.
"${netns[@]}" /usr/bin/python3 - "$prom" <<'EOF' || fail "the bad file did not reach Prometheus within 30 s"
import json, sys, time, urllib.parse, urllib.request
q = urllib.parse.quote("hostsdir_broker_problem_files == 1")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with urllib.request.urlopen(f"{sys.argv[1]}/api/v1/query?query={q}", timeout=10) as r:
        if json.load(r)["data"]["result"]:
            sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
EOF
pass "Prometheus scraped problem_files = 1"
run_checker wait "$prom" hostsdir-broker 10
run_checker live "$prom" "$rules" "$dashboard" HostsdirBrokerProblemFiles,HostsdirBrokerTLSCertificateExpiresSoon

# The certificate's expiry as Prometheus has it is the certificate's own.
want=$(date -d "$(openssl x509 -enddate -noout -in "$work/tls.crt" | cut -d= -f2)" +%s)
got=$("${netns[@]}" curl -s "$prom/api/v1/query" --data-urlencode 'query=hostsdir_broker_tls_certificate_expiry_timestamp_seconds' \
    | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
[[ "$got" == "$want" ]] || fail "Prometheus has the certificate expiring at $got, openssl says $want"
pass "the certificate expiry in Prometheus ($got) is the certificate's notAfter"

# The broker stops: Prometheus sees the target down.
kill -TERM "$broker_pid"
for _ in $(seq 150); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$broker_pid" 2>/dev/null && fail "the broker did not stop within 15 s of SIGTERM"
wait "$broker_pid" 2>/dev/null || true
broker_pid=
run_checker down "$prom" "$rules" HostsdirBrokerDown

echo "test-monitoring: done in $(( $(date +%s) - started )) s"
echo "monitoring: $checks checks passed"
