#!/usr/bin/env python3
"""Turns the raw output of bench/run.sh into the markdown table.

Usage: report.py RAW_DIR  (prints markdown to stdout)

Raw files, per measured run: NAME-TARGET.out (the tool's output) and
NAME-TARGET.meta (proxy CPU, wall time, RSS peak, ...). Runs are named
METRIC.rN (round N: latRATE, h1, h2); the table shows the median over
rounds, and the throughput verdicts the median of per-round ratios.
"""
import glob
import json
import os
import re
import statistics
import sys

RAW = sys.argv[1]
TARGETS = ["direct", "haproxy", "strait"]
PROXIES = ["haproxy", "strait"]
QS = ("p50", "p99", "p99.9")


def path(name):
    return os.path.join(RAW, name)


def load_json(name, default=None):
    try:
        with open(path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read(name):
    try:
        with open(path(name)) as f:
            return f.read()
    except OSError:
        return ""


def parse_oha(text):
    try:
        d = json.loads(text)
    except ValueError:
        return None
    codes = {k: int(v) for k, v in (d.get("statusCodeDistribution") or {}).items()}
    errors = {k: int(v) for k, v in (d.get("errorDistribution") or {}).items()}
    p = d["latencyPercentiles"]
    return {
        "p50": p["p50"] * 1e3,
        "p99": p["p99"] * 1e3,
        "p99.9": p["p99.9"] * 1e3,
        "rps": d["summary"]["requestsPerSec"],
        "requests": sum(codes.values()) + sum(errors.values()),
        "non2xx": sum(v for k, v in codes.items() if not k.startswith("2")),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def parse_wrk(t):
    m = re.search(r"(\d+) requests in ([\d.]+)s", t)
    if not m:
        return None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    return {
        "requests": int(m.group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def parse_codes(t):
    """curl -w '%{http_code}\\n' over many URLs: one status per line."""
    codes = [line.strip() for line in t.splitlines() if line.strip()]
    if not codes:
        return None
    return {
        "requests": len(codes),
        "non2xx": sum(1 for c in codes if not c.startswith("2")),
        "errors": sum(1 for c in codes if c == "000"),
    }


def parse_h2load(t):
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", t)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", t)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", t)
    if not (m and r and s):
        return None
    return {
        "requests": int(r.group(3)),
        "rps": float(m.group(2)),
        "non2xx": int(s.group(2)) + int(s.group(3)) + int(s.group(4)),
        "errors": int(r.group(5)) + int(r.group(6)) + int(r.group(7)),
    }


# runs[(metric, target)] = [run, ...], one per round; a run is the tool's
# parsed numbers plus its .meta under "meta".
runs = {}
for meta_file in sorted(glob.glob(path("*.meta"))):
    base = os.path.basename(meta_file)[: -len(".meta")]
    name, target = base.rsplit("-", 1)
    metric = name.split(".")[0]
    text = read(base + ".out")
    parsed = (parse_oha(text) if metric.startswith(("lat", "mlat")) else
              parse_wrk(text) if metric in ("h1", "mh1", "h1base", "h1tap", "h1nospans", "h1spans") else
              parse_codes(text) if metric == "mnew" else parse_h2load(text))
    if parsed is None:
        continue
    parsed["meta"] = load_json(base + ".meta", {})
    if metric == "mnew" and parsed["meta"].get("wall_s"):
        parsed["rps"] = parsed["requests"] / parsed["meta"]["wall_s"]
    parsed["round"] = name
    runs.setdefault((metric, target), []).append(parsed)

start = load_json("run-start.json", {})
end = load_json("run-end.json", {})
ROUND_METRICS = ("lat1000", "lat5000")


def fmt(x, digits=0):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def value(metric, target, key):
    """Median over rounds of one number of a run."""
    rs = runs.get((metric, target))
    return median([r[key] for r in rs]) if rs else None


def added(metric, target, q):
    """Median over rounds of (proxy's percentile - direct's in the same round)."""
    direct = {r["round"]: r for r in runs.get((metric, "direct"), [])}
    diffs = [r[q] - direct[r["round"]][q] for r in runs.get((metric, target), []) if r["round"] in direct]
    return median(diffs)


def spread(metric, target, q):
    rs = runs.get((metric, target))
    if not rs or len(rs) < 2:
        return None
    return f"{min(r[q] for r in rs):.3f}–{max(r[q] for r in rs):.3f}"


def total(metric, target, key):
    rs = runs.get((metric, target))
    return sum(r[key] for r in rs) if rs else None


def meta_sum(metric, target, key):
    rs = runs.get((metric, target))
    return sum(r["meta"].get(key, 0) for r in rs) if rs else None


def meta_max(metric, target, key):
    rs = runs.get((metric, target))
    return max(r["meta"].get(key, 0) for r in rs) if rs else None


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def mb(kb):
    return None if not kb else kb * 1024 / 1e6


lines = []
out = lines.append
v = end.get("versions", {})
out(f"## Strait benchmark: {start.get('start', '?')}")
out("")
out(f"Direct path vs HAProxy {v.get('haproxy', '?')} (`nbthread 1`) vs "
    f"strait-proxy {v.get('strait', '?')} (`--workers 1`, {1000:,} endpoints known), same nginx upstream, same run. "
    f"{end.get('pinning', '')}; run at nice {end.get('nice', '?')}; during latency runs "
    f"{'CPU 1 kept out of idle halt by a SCHED_IDLE busy loop' if end.get('spin') == '1' else 'CPU 1 left to idle (BENCH_SPIN=0)'}. Load average at start {start.get('loadavg_start', '?')}, "
    f"at end {end.get('loadavg_end', '?')}; CPU busy just before measuring: {start.get('busy_before_pct', '?')} % "
    f"of both cores; the run took {end.get('elapsed_s', '?')} s.")
out("")
out("| metric | direct | HAProxy | strait-proxy | strait ÷ HAProxy |")
out("| --- | ---: | ---: | ---: | ---: |")


def row(label, values, digits=0, show_ratio=True):
    d, h, s = values
    r = ratio(s, h) if show_ratio else None
    cells = ["–" if d is None else (d if isinstance(d, str) else fmt(d, digits))]
    cells += [x if isinstance(x, str) else fmt(x, digits) for x in (h, s)]
    out(f"| {label} | {' | '.join(cells)} | {fmt(r, 2) + '×' if r is not None else ''} |")


def busy(metric, t, key):
    """Median over rounds of a CPU time as % of the run's wall time."""
    rs = [r["meta"] for r in runs.get((metric, t), []) if r["meta"].get("wall_s")]
    return median([min(100, 100 * m[key] / m["wall_s"]) for m in rs])


def round_ratios(metric, key="rps"):
    """strait ÷ HAProxy per round, for rounds where both ran."""
    ha = {r["round"]: r[key] for r in runs.get((metric, "haproxy"), [])}
    return [r[key] / ha[r["round"]] for r in runs.get((metric, "strait"), [])
            if ha.get(r["round"])]


def rps_spread(metric, t):
    rs = runs.get((metric, t))
    if not rs or len(rs) < 2:
        return None
    return f"{min(r['rps'] for r in rs):,.0f}–{max(r['rps'] for r in rs):,.0f}"


dur = start.get("dur_s", "?")
tr = start.get("tput_rounds", 1)
for metric, label in (("h1", f"HTTP/1.1 throughput, req/s (wrk, 1 thread, 50 conns, median of {tr} × {dur} s)"),
                      ("h2", f"HTTP/2 throughput, req/s (h2load, h2c, 10 conns × 10 streams, median of {tr} × {dur} s)")):
    row(label, [value(metric, t, "rps") for t in TARGETS])
    row("  per round, min–max, req/s", [rps_spread(metric, t) for t in TARGETS], 0, False)
    rr = round_ratios(metric)
    if rr:
        out(f"|   strait ÷ HAProxy per round (rounds seconds apart) | | | | "
            f"{', '.join(f'{x:.2f}' for x in rr)}; median {median(rr):.2f}× |")
    row("  proxy process CPU time, % of its core", [None] + [busy(metric, t, "cpu_s") for t in PROXIES], 0, False)
    row("  CPU 1 busy (proxy + kernel softirq + any other work), %",
        [None] + [busy(metric, t, "core1_busy_s") for t in PROXIES], 0, False)

rounds = start.get("rounds", "?")
for metric, rate, secs in (("lat1000", 1000, start.get("lat_s", "?")), ("lat5000", 5000, start.get("lat5k_s", "?"))):
    for q in QS:
        row(f"latency at {rate:,} rps, {q}, ms (median of {rounds} × {secs} s)", [value(metric, t, q) for t in TARGETS], 3)
    for q in QS:
        row(f"  **added** over direct at {rate:,} rps, {q}, ms", [None] + [added(metric, t, q) for t in PROXIES], 3)
    row(f"  p99 per round, min–max, ms", [spread(metric, t, "p99") for t in TARGETS], 3, False)
    row(f"  achieved rate, req/s", [value(metric, t, "rps") for t in TARGETS], 0, False)

idle = {t: load_json(f"idle-{t}.json") or {} for t in PROXIES}
after = {t: load_json(f"after-{t}.json") or {} for t in PROXIES}
row("RSS idle, MB", [None] + [mb(idle[t].get("rss_kb")) for t in PROXIES], 1)
row("RSS under 1,000 rps (peak of 0.5 s samples), MB", [None] + [mb(meta_max("lat1000", t, "rss_max_kb")) for t in PROXIES], 1)
row("  of which anonymous (RssAnon), MB", [None] + [mb(meta_max("lat1000", t, "rss_anon_max_kb")) for t in PROXIES], 1)
row("RSS peak over all runs, MB",
    [None] + [mb(max(meta_max(m, t, "rss_max_kb") or 0 for m in ("lat1000", "lat5000", "h1", "h2"))) for t in PROXIES], 1)
row("RSS idle after all runs, MB", [None] + [mb(after[t].get("rss_kb")) for t in PROXIES], 1)


def cpu10k(metric, t):
    reqs, cpu = total(metric, t, "requests"), meta_sum(metric, t, "cpu_s")
    return None if not reqs or cpu is None else cpu * 10000 / reqs


for metric, label in (("h1", "HTTP/1.1 max throughput"), ("h2", "HTTP/2 max throughput"),
                      ("lat1000", "1,000 rps"), ("lat5000", "5,000 rps")):
    row(f"CPU s per 10,000 requests, {label}", [None] + [cpu10k(metric, t) for t in PROXIES], 3)

ALL = ("lat1000", "lat5000", "h1", "h2")
bad = {t: sum((total(m, t, "non2xx") or 0) + (total(m, t, "errors") or 0) for m in ALL) for t in TARGETS}
count = {t: sum(total(m, t, "requests") or 0 for m in ALL) for t in TARGETS}
out("| non-2xx responses + errors / requests measured | "
    + " | ".join(f"{bad[t]:,} / {count[t]:,}" for t in TARGETS) + " | |")
out("")

# The bars from the issue.
out("| bar | HAProxy | strait-proxy | result |")
out("| --- | ---: | ---: | --- |")


def verdict(ok):
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


for metric, label in (("h1", "HTTP/1.1"), ("h2", "HTTP/2")):
    h, s = value(metric, "haproxy", "rps"), value(metric, "strait", "rps")
    rr = median(round_ratios(metric))
    ok = None if rr is None else rr >= 1.0
    notes = [] if rr is None else [f"median of per-round ratios {rr:.2f}×"]
    core = busy(metric, "haproxy", "core1_busy_s")
    if core is not None and core < 95:
        notes.append(f"HAProxy's core was only {core:.0f} % busy: the client/upstream core capped the run; "
                     "compare CPU s per 10,000 requests")
    note = f" ({'; '.join(notes)})" if notes else ""
    out(f"| {label} throughput ≥ 1.0× HAProxy | {fmt(h)} req/s | {fmt(s)} req/s | {verdict(ok)}{note} |")
ha, sa = added("lat1000", "haproxy", "p99"), added("lat1000", "strait", "p99")
ok = None if ha is None or sa is None else sa <= ha
out(f"| added p99 at 1,000 rps ≤ HAProxy's | {fmt(ha, 3)} ms | {fmt(sa, 3)} ms | {verdict(ok)} |")
s_rss = mb(meta_max("lat1000", "strait", "rss_max_kb"))
out(f"| RSS ≤ 10 MB under 1,000 rps, {1000:,} endpoints known | "
    f"{fmt(mb(meta_max('lat1000', 'haproxy', 'rss_max_kb')), 1)} MB | "
    f"{fmt(s_rss, 1)} MB | {verdict(None if s_rss is None else s_rss <= 10)} |")
out("")

# Noise: CPU time that other processes (not the proxies, nginx or the load
# generator) got on the two cores during each measured run.
noise = []
for (metric, t), rs in runs.items():
    for r in rs:
        m = r["meta"]
        if m.get("wall_s") and "others_cpu_s" in m:
            noise.append((100 * m["others_cpu_s"] / m["wall_s"], f"{r['round']}/{t}"))
NOISY = 25  # % of one core
if noise:
    worst = max(noise)
    listed = ", ".join(f"{n} {p:.0f}" for p, n in sorted(noise, reverse=True) if p > 10)
    if worst[0] > NOISY:
        out(f"**Noisy run**: other work (processes not part of the benchmark, kernel threads) used more than "
            f"{NOISY} % of a core during some measured runs (% of one core, runs above 10: {listed}). "
            f"Numbers from those runs are not to be relied on.")
    else:
        out(f"Quiet enough: other work (processes not part of the benchmark, kernel threads) used at most "
            f"{worst[0]:.0f} % of a core during any measured run"
            + (f" (runs above 10 %: {listed})." if listed else "."))
    out("")
for t in PROXIES:
    kinds = {}
    for metric in ROUND_METRICS:
        for r in runs.get((metric, t), []):
            for k, n in (r.get("error_kinds") or {}).items():
                kinds[k] = kinds.get(k, 0) + n
    if kinds:
        out(f"{t} client-side errors: " + "; ".join(f"{k}: {n}" for k, n in kinds.items()))
        out("")
stderr = [line for line in read("strait.stderr").splitlines() if line.strip()]
if stderr:
    out(f"strait-proxy wrote {len(stderr)} line(s) to stderr (at `--log warn`); first: `{stderr[0][:200]}`")
else:
    out("strait-proxy wrote nothing to stderr (at `--log warn`).")
codes = {}
for line in read("strait-metrics.txt").splitlines():
    m = re.match(r'strait_requests_total\{.*code="(\d+)".*\} (\d+)', line)
    if m:
        codes[m.group(1)] = codes.get(m.group(1), 0) + int(m.group(2))
if codes:
    out("")
    out("strait-proxy's own count of responses by status, warm-ups included: "
        + ", ".join(f"{k}: {n:,}" for k, n in sorted(codes.items())) + ".")
out("")
out(f"Tools: wrk {v.get('wrk', '?')}, h2load {v.get('h2load', '?')}, oha {v.get('oha', '?')} "
    f"(`-q RATE -c 50 --latency-correction`), nginx {v.get('nginx', '?')} upstream; "
    f"kernel {v.get('kernel', '?')}, {v.get('cpu', '?')}.")

def variant(title, desc, base, var, heads, bar=None):
    """One strait-proxy against a variant of it (interleaved rounds):
    base and var are (metric, target) of wrk runs named METRIC.rN."""
    if not (runs.get(base) and runs.get(var)):
        return
    out("")
    out(f"### {title}")
    out("")
    out(desc)
    out("")
    out(f"| metric | {heads[0]} | {heads[1]} | ratio |")
    out("| --- | ---: | ---: | ---: |")
    b_rps, v_rps = value(*base, "rps"), value(*var, "rps")
    out(f"| req/s (median of rounds) | {fmt(b_rps)} | {fmt(v_rps)} | {fmt(ratio(v_rps, b_rps), 2)}× |")
    by_round = {r["round"].split(".", 1)[1]: r for r in runs[base]}
    rr = [r["rps"] / by_round[r["round"].split(".", 1)[1]]["rps"]
          for r in runs[var] if r["round"].split(".", 1)[1] in by_round]
    verdict = ""
    if bar is not None and rr:
        verdict = f" — bar ≥ {bar:.2f}×: {'PASS' if median(rr) >= bar else 'FAIL'}"
    out(f"|   per round | | | {', '.join(f'{x:.2f}' for x in rr)}; median {fmt(median(rr), 2)}×{verdict} |")
    b_cpu, v_cpu = cpu10k(*base), cpu10k(*var)
    out(f"| proxy CPU s per 10,000 requests | {fmt(b_cpu, 3)} | {fmt(v_cpu, 3)} | {fmt(ratio(v_cpu, b_cpu), 2)}× |")
    b_rss, v_rss = mb(meta_max(*base, "rss_max_kb")), mb(meta_max(*var, "rss_max_kb"))
    out(f"| proxy RSS peak, MB | {fmt(b_rss, 1)} | {fmt(v_rss, 1)} | |")


# strait-proxy with one `strait tap` attached (bench/run.sh).
variant("strait-proxy with one `strait tap` attached",
        "HTTP/1.1 max throughput (wrk, as above) without a tap and with one `strait tap --json` "
        "reading every request (its output to /dev/null, the tap on CPU 0 with the load generator), "
        "interleaved rounds.",
        ("h1base", "strait"), ("h1tap", "strait"), ("no tap", "one tap"))

# Span export at 1 % to a live Jaeger (bench/run.sh).
variant("strait-proxy exporting spans (1 % sampling, live Jaeger)",
        "HTTP/1.1 max throughput (wrk, as above) through the same binary and config without span "
        "export and with `--trace-collector` to a live Jaeger v1.76 (OTLP/HTTP, in-memory storage, on "
        "CPU 0 with the load generator) at `--trace-sampling 0.01`: every request gets a new "
        "`traceparent`, 1 % are recorded and exported. Two processes on CPU 1, interleaved rounds.",
        ("h1nospans", "strait"), ("h1spans", "sttrace"), ("spans off", "spans at 1 %"), bar=0.97)
spans = load_json("spans.json")
if spans:
    out("")
    out(f"Spans exported {spans.get('exported', 0):,}, dropped {spans.get('dropped', 0):,}; "
        f"Jaeger holds {spans.get('jaeger_traces', 0):,} traces of `service.name` "
        f"`{spans.get('service', '?')}`.")
out("")

# Two hops with mTLS (bench/mtls.sh).
if runs.get(("mlat1000", "stpair")) or runs.get(("mh1", "stpair")):
    PAIRS = ["hapair", "stpair"]
    out("### Two hops with mTLS")
    out("")
    out("client → proxy → TLS 1.3 with client certificates (one CA, ECDSA P-256) → proxy → the same nginx. "
        "HAProxy pair: two HAProxy processes (`nbthread 1` each; `ssl crt … verify required`, "
        "`http-reuse always`). Strait pair: two strait-proxy processes (`--workers 1` each), the "
        "client's outbound side to the server's inbound side (mesh TLS; HTTP/1.1 carried as HTTP/2 streams of one connection). "
        "Both processes of a pair on CPU 1; client and nginx on CPU 0.")
    out("")
    out("| metric | direct | HAProxy pair | strait pair | strait ÷ HAProxy |")
    out("| --- | ---: | ---: | ---: | ---: |")

    for q in QS:
        m_rounds = load_json("mtls-rounds.json", {}).get("rounds", rounds)
        row(f"latency at 1,000 rps, {q}, ms (median of {m_rounds} × {start.get('lat_s', '?')} s)",
             [value("mlat1000", t, q) for t in ["direct"] + PAIRS], 3)
    for q in QS:
        row(f"  **added** over direct, {q}, ms", [None] + [added("mlat1000", t, q) for t in PAIRS], 3)
    row("  p99 per round, min–max, ms", [spread("mlat1000", t, "p99") for t in ["direct"] + PAIRS], 3, False)
    row("HTTP/1.1 max throughput, req/s (wrk, 50 conns)", [None] + [value("mh1", t, "rps") for t in PAIRS])
    ha_rounds = {x["round"]: x["rps"] for x in runs.get(("mh1", "hapair"), [])}
    pr = [r["rps"] / ha_rounds[r["round"]] for r in runs.get(("mh1", "stpair"), []) if ha_rounds.get(r["round"])]
    if pr:
        out(f"|   strait ÷ HAProxy per round | | | | {', '.join(f'{x:.2f}' for x in pr)}; median {median(pr):.2f}× |")
    row("CPU s per 10,000 requests, both proxies, max throughput", [None] + [cpu10k("mh1", t) for t in PAIRS], 3)
    row("CPU s per 10,000 requests, both proxies, 1,000 rps", [None] + [cpu10k("mlat1000", t) for t in PAIRS], 3)
    row("new mTLS connections per second (curl, 8 parallel, one request each)",
         [None] + [value("mnew", t, "rps") for t in PAIRS])
    row("  CPU ms of the server-side proxy per new connection",
         [None] + [None if not total("mnew", t, "requests") else 1000 * meta_sum("mnew", t, "cpu_s") / total("mnew", t, "requests")
                   for t in PAIRS], 3)
    row("RSS under 1,000 rps, client-side proxy, MB", [None] + [mb(meta_max("mlat1000", t, "rss_max_kb")) for t in PAIRS], 1)
    row("RSS under 1,000 rps, server-side proxy, MB", [None] + [mb(meta_max("mlat1000", t, "rss2_max_kb")) for t in PAIRS], 1)
    row("  client-side proxy's anonymous memory (RssAnon), MB",
        [None] + [mb(meta_max("mlat1000", t, "rss_anon_max_kb")) for t in PAIRS], 1)
    MALL = ("mlat1000", "mh1", "mnew")
    mbad = {t: sum((total(m, t, "non2xx") or 0) + (total(m, t, "errors") or 0) for m in MALL) for t in PAIRS}
    mcount = {t: sum(total(m, t, "requests") or 0 for m in MALL) for t in PAIRS}
    out("| non-2xx responses + errors / requests measured | | "
        + " | ".join(f"{mbad[t]:,} / {mcount[t]:,}" for t in PAIRS) + " | |")
    out("")
    out("| bar | HAProxy pair | strait pair | result |")
    out("| --- | ---: | ---: | --- |")
    ha, sa = added("mlat1000", "hapair", "p99"), added("mlat1000", "stpair", "p99")
    out(f"| added p99 at 1,000 rps ≤ the HAProxy pair's | {fmt(ha, 3)} ms | {fmt(sa, 3)} ms | "
        f"{verdict(None if ha is None or sa is None else sa <= ha)} |")
    hc, sc = cpu10k("mh1", "hapair"), cpu10k("mh1", "stpair")
    out(f"| CPU per request ≤ the HAProxy pair's (max throughput) | {fmt(hc, 3)} s/10k | {fmt(sc, 3)} s/10k | "
        f"{verdict(None if hc is None or sc is None else sc <= hc)} |")
    rss = [mb(meta_max("mlat1000", "stpair", k)) for k in ("rss_max_kb", "rss2_max_kb")]
    worst = max((x for x in rss if x is not None), default=None)
    out(f"| strait-proxy RSS ≤ 12 MB under 1,000 rps with mTLS (each proxy) | | {fmt(worst, 1)} MB | "
        f"{verdict(None if worst is None else worst <= 12)} |")
    out("")

print("\n".join(lines))
