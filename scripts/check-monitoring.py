#!/usr/bin/python3
"""Checks of the monitoring examples, for scripts/test-monitoring.sh.

  check-monitoring.py static RULES TESTS DOC DASHBOARD
      every alert is fired and cleared by the promtool tests, has a runbook
      section in DOC at its runbook_url's anchor and a row in DOC's alert
      table; the dashboard is well-formed (unique ids, a query per panel,
      the data source variable everywhere).

  check-monitoring.py live PROM_URL RULES DASHBOARD EXPECTED
      against a Prometheus that scrapes a running broker and loaded RULES:
      every metric, matcher and grouping label the alerts and the dashboard
      use is in the live data; every alert expression and every panel query
      runs (panels must return data); Prometheus evaluated every rule
      without error; exactly the alerts named in EXPECTED (comma-separated)
      are active (pending or firing), and their expressions return series.

  check-monitoring.py servicemonitor SERVICEMONITOR LAYOUT...
      the ServiceMonitor, as written and with its `#tls ` lines on, selects
      the Service `hostsdir-broker` of each Kubernetes layout by its labels
      and scrapes a port that Service has.

  check-monitoring.py wait PROM_URL JOB N
      waits until Prometheus scraped JOB successfully N times.

  check-monitoring.py down PROM_URL RULES ALERT
      after the broker was stopped: waits until Prometheus saw the target
      down, then ALERT's expression must return it.

Each check prints one `ok:` line; the last line is
`check-monitoring: N checks passed`. The first failure exits 1 with `FAIL:`.
Only the standard library and PyYAML (Debian: python3-yaml).
"""

import json
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

PASSED = 0

# Grafana's variables, as the live check substitutes them.
GRAFANA_VARS = {"$__rate_interval": "1m", "$instance": ".*"}

# Labels Prometheus adds to every target's series: checked on `up`.
TARGET_LABELS = {"job", "instance"}

# PromQL words that look like metric names in an expression.
PROMQL_WORDS = {
    "sum", "by", "on", "without", "ignoring", "group_left", "group_right",
    "unless", "and", "or", "rate", "increase", "histogram_quantile", "time",
    "absent", "count", "max", "min", "avg", "offset", "bool", "le", "inf",
    "nan",
}


def ok(what):
    global PASSED
    PASSED += 1
    print(f"ok: {what}")


def fail(what):
    print(f"FAIL: {what}", file=sys.stderr)
    sys.exit(1)


def load_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        fail(f"cannot read `{path}`: {e}")


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read `{path}`: {e}")


def alert_rules(rules_path):
    rules = [r for g in load_yaml(rules_path)["groups"] for r in g["rules"] if "alert" in r]
    if not rules:
        fail(f"`{rules_path}` holds no alert")
    return rules


def panel_queries(dashboard):
    """(panel title, query) for every query of every panel, variables substituted."""
    out = []
    for p in dashboard["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            if "$" in expr:
                fail(f"panel `{p['title']}`: unknown variable in `{expr}`")
            out.append((p["title"], expr))
    return out


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# --------------------------------------------------------------------------
# static


def check_static(rules_path, tests_path, doc_path, dashboard_path):
    rules = alert_rules(rules_path)
    names = [r["alert"] for r in rules]
    if len(set(names)) != len(names):
        fail(f"alert names repeat in `{rules_path}`: {names}")
    tests = load_yaml(tests_path)
    fired, cleared = set(), set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []):
            (fired if a.get("exp_alerts") else cleared).add(a["alertname"])
    for name in names:
        if name not in fired:
            fail(f"no promtool test in `{tests_path}` fires {name}")
        if name not in cleared:
            fail(f"no promtool test in `{tests_path}` shows {name} not firing")
    ok(f"every alert ({len(names)}) is fired and cleared by a promtool test")
    unknown = (fired | cleared) - set(names)
    if unknown:
        fail(f"`{tests_path}` tests alerts that do not exist: {sorted(unknown)}")
    ok("the promtool tests name only existing alerts")

    try:
        with open(doc_path, encoding="utf-8") as f:
            doc = f.read()
    except OSError as e:
        fail(f"cannot read `{doc_path}`: {e}")
    anchors = {github_anchor(m) for m in re.findall(r"^#+ (.+)$", doc, re.M)}
    doc_name = doc_path.rsplit("/", 1)[-1]
    for r in rules:
        url = r.get("annotations", {}).get("runbook_url", "")
        page, _, anchor = url.partition("#")
        if not page.endswith(doc_name) or not anchor:
            fail(f"{r['alert']}: runbook_url `{url}` does not point into {doc_name}")
        if anchor not in anchors:
            fail(f"{r['alert']}: no heading in `{doc_path}` has the anchor #{anchor}")
        if anchor != github_anchor(r["alert"]):
            fail(f"{r['alert']}: its runbook anchor #{anchor} is not its own name")
        for field in ("summary", "description"):
            if not r.get("annotations", {}).get(field):
                fail(f"{r['alert']}: no {field} annotation")
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            fail(f"{r['alert']}: severity is not critical, warning or info")
        if not re.search(rf"^\| *\[?`?{r['alert']}`?\]?", doc, re.M):
            fail(f"{r['alert']}: not in the alert table of `{doc_path}`")
    ok(f"every alert has a severity, a summary, a description, a runbook section in {doc_name} and a row in its table")

    dash = load_json(dashboard_path)
    ids = [p["id"] for p in dash["panels"]]
    if len(set(ids)) != len(ids):
        fail(f"panel ids repeat in `{dashboard_path}`")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        if not p.get("targets"):
            fail(f"panel `{p['title']}` has no query")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"panel `{p['title']}` does not use the ${{datasource}} variable")
        for t in p["targets"]:
            if not t.get("expr") or not t.get("refId"):
                fail(f"panel `{p['title']}` has a target without expr or refId")
    variables = {v["name"] for v in dash["templating"]["list"]}
    if variables != {"datasource", "instance"}:
        fail(f"dashboard variables are {sorted(variables)}, not datasource and instance")
    ok(f"the dashboard is well-formed ({len(ids)} panels, {len(panel_queries(dash))} queries)")
    return names


# --------------------------------------------------------------------------
# live


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            fail(f"{path} {params}: HTTP {e.code}: {detail}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            fail(f"{path} {params}: {e}")
        if body.get("status") != "success":
            fail(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        data = self.get("/api/v1/query", query=expr)
        return data["result"]


def metric_names(expr):
    """Metric names in a PromQL expression (selectors, not functions)."""
    no_strings = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', '""', expr))
    no_groupings = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", no_strings)
    no_ranges = re.sub(r"\[[^\]]*\]", "", no_groupings)
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", no_ranges):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def selectors(expr):
    """(metric, matchers) for every `metric{...}` in the expression."""
    return re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)


def grouping_labels(expr):
    labels = set()
    for group in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {l.strip() for l in group.split(",") if l.strip()}
    return labels


def check_uses(prom, owner, expr):
    """Every metric, selector and grouping label of `expr` is in live data."""
    names = metric_names(expr)
    if not names:
        fail(f"{owner}: no metric found in `{expr}`")
    for name in sorted(names):
        if not prom.query(f"count({name})"):
            fail(f"{owner}: metric `{name}` is not in the scraped data")
    for name, matchers in selectors(expr):
        live_matchers = ",".join(m for m in matchers.split(",") if "$" not in m and m.strip())
        if not prom.query(f"count({name}{{{live_matchers}}})"):
            fail(f"{owner}: no series matches `{name}{{{live_matchers}}}`")
    for label in sorted(grouping_labels(expr) - {"le"}):
        carriers = names if label not in TARGET_LABELS else {"up"}
        if not any(prom.query(f'count({n}{{{label}!=""}})') for n in carriers):
            fail(f"{owner}: no metric of `{expr}` has the label `{label}`")
    if "histogram_quantile" in expr and not any(n.endswith("_bucket") for n in names):
        fail(f"{owner}: histogram_quantile over a metric that is not a histogram's _bucket")


def wait_for_scrapes(prom, job, scrapes, limit_s):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        res = prom.query(f'count_over_time(up{{job="{job}"}}[5m]) >= {scrapes} and up{{job="{job}"}} == 1')
        if res:
            return
        time.sleep(0.2)
    fail(f"Prometheus did not scrape the broker successfully {scrapes} times within {limit_s} s")


def check_live(prom_url, rules_path, dashboard_path, expected):
    prom = Prometheus(prom_url)
    rules = alert_rules(rules_path)
    names = {r["alert"] for r in rules}
    expected = {e for e in expected.split(",") if e}
    if expected - names:
        fail(f"expected alerts that do not exist: {sorted(expected - names)}")

    for r in rules:
        check_uses(prom, r["alert"], r["expr"])
        prom.query(r["expr"])  # runs, or fail()s
    ok(f"every metric, matcher and label the {len(rules)} alerts use is in the live scrape, and each alert expression runs")

    dash = load_json(dashboard_path)
    queries = panel_queries(dash)
    for title, expr in queries:
        check_uses(prom, f"panel `{title}`", expr)
        if not prom.query(expr):
            fail(f"panel `{title}`: `{expr}` returns no data from a live broker")
    ok(f"every dashboard query ({len(queries)} in {len(dash['panels'])} panels) runs, returns data, and names only live metrics and labels")

    groups = prom.get("/api/v1/rules", type="alert")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    if set(loaded) != names:
        fail(f"Prometheus loaded {sorted(loaded)}, not {sorted(names)}")
    for name, r in loaded.items():
        if r.get("health") != "ok" or r.get("lastError"):
            fail(f"Prometheus evaluates {name} with an error: {r.get('lastError')}")
        if r.get("lastEvaluation", "").startswith("0001"):
            fail(f"Prometheus has not evaluated {name} yet")
    ok(f"Prometheus loaded and evaluated all {len(names)} alerts without error")

    # Rules run every evaluation interval (1 s here), after the scrapes the
    # caller waited for: allow a few evaluations.
    deadline = time.monotonic() + 15
    while True:
        active = {a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"]}
        if active == expected:
            break
        if time.monotonic() > deadline:
            fail(f"active alerts are {sorted(active)}, expected exactly {sorted(expected)}")
        time.sleep(0.2)
    for r in rules:
        returned = bool(prom.query(r["expr"]))
        if returned != (r["alert"] in expected):
            fail(f"{r['alert']}: its expression {'returns' if returned else 'does not return'} series on the live broker")
    ok(f"exactly the expected alerts are active on the live broker: {', '.join(sorted(expected)) or 'none'}")


def check_down(prom_url, rules_path, alert):
    prom = Prometheus(prom_url)
    rule = next((r for r in alert_rules(rules_path) if r["alert"] == alert), None)
    if rule is None:
        fail(f"no alert {alert}")
    # A few failed scrapes at 1 s; bounded well past the scrape timeout.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if prom.query(rule["expr"]):
            ok(f"{alert}'s expression returns the stopped broker")
            return
        time.sleep(0.2)
    fail(f"{alert}'s expression did not return the stopped broker within 30 s")


def check_servicemonitor(sm_path, *layouts):
    """The ServiceMonitor (as written, and with TLS on) selects the Service
    of each Kubernetes layout by its labels and names a port it has."""
    with open(sm_path, encoding="utf-8") as f:
        text = f.read()
    variants = {"as written": text, "with TLS": re.sub(r"(?m)^(\s*)#tls ", r"\1", text)}
    for variant, body in variants.items():
        try:
            sm = yaml.safe_load(body)
        except yaml.YAMLError as e:
            fail(f"`{sm_path}` {variant} does not parse: {e}")
        if (sm.get("apiVersion"), sm.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
            fail(f"`{sm_path}` {variant} is not a monitoring.coreos.com/v1 ServiceMonitor")
        want = sm["spec"]["selector"]["matchLabels"]
        ports = {e["port"] for e in sm["spec"]["endpoints"]}
        if variant == "with TLS" and any(e.get("scheme") != "https" for e in sm["spec"]["endpoints"]):
            fail(f"`{sm_path}` with TLS does not scrape https")
        for layout in layouts:
            with open(layout, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d]
            services = [d for d in docs if d.get("kind") == "Service"
                        and d["metadata"]["name"] == "hostsdir-broker"]
            if len(services) != 1:
                fail(f"`{layout}` has no Service hostsdir-broker")
            svc = services[0]
            labels = svc["metadata"].get("labels", {})
            if any(labels.get(k) != v for k, v in want.items()):
                fail(f"`{sm_path}` selects {want}; the Service in `{layout}` has {labels}")
            svc_ports = {p.get("name") for p in svc["spec"]["ports"]}
            if not ports <= svc_ports:
                fail(f"`{sm_path}` scrapes ports {sorted(ports)}; the Service in `{layout}` has {sorted(svc_ports)}")
    ok(f"the ServiceMonitor (as written and with TLS) selects the Service of {len(layouts)} layouts by label and port")


def main(argv):
    if len(argv) == 6 and argv[1] == "static":
        check_static(*argv[2:])
    elif len(argv) == 6 and argv[1] == "live":
        check_live(*argv[2:])
    elif len(argv) == 5 and argv[1] == "down":
        check_down(*argv[2:])
    elif len(argv) >= 4 and argv[1] == "servicemonitor":
        check_servicemonitor(*argv[2:])
    elif len(argv) == 5 and argv[1] == "wait":
        wait_for_scrapes(Prometheus(argv[2]), argv[3], int(argv[4]), 60)
        ok(f"Prometheus scraped job {argv[3]} successfully {argv[4]} times")
    else:
        fail(__doc__)
    print(f"check-monitoring: {PASSED} checks passed")


if __name__ == "__main__":
    main(sys.argv)
