#!/usr/bin/env python3
"""One table, confab vs Kamailio, from one bench/run.sh run.

    compare.py RUNDIR [--smoke]

Reads RUNDIR/confab/results.json, RUNDIR/kamailio/results.json (lib/bench.py),
RUNDIR/{confab,kamailio}/presence/presence.json (lib/presence.py) and RUNDIR/micro.txt
(cargo bench output, if any); writes RUNDIR/summary.md and prints it.
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402

UNIT = {"register": "REGISTER/s", "message": "MESSAGE/s", "call": "calls/s"}
LABEL = {"register": "digest REGISTER", "message": "authenticated MESSAGE relay",
         "call": "INVITE/200/ACK/BYE call"}


def load(p):
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError):
        return None


def num(v, nd=0):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def pct(res, k="p50", rtd="1"):
    r = (res or {}).get(str(rtd)) or (res or {}).get(int(rtd)) if isinstance(res, dict) else None
    return None if not r else r.get(k)


def lat(rtt, rtd="1"):
    a, b = pct(rtt, "p50", rtd), pct(rtt, "p99", rtd)
    if a is None:
        return "-"
    return f"{a:.0f}/{b:.0f}"


def ratio(c, k):
    if c is None or k in (None, 0):
        return None
    return c / k


def verdict(r, target, higher_better=True):
    if r is None:
        return "n/a"
    ok = r >= target if higher_better else r <= target
    return ("met" if ok else "NOT met") + f" (target {'≥' if higher_better else '≤'} {target:g}×)"


def p99_ratio(c, k, tick=4.0):
    """confab/Kamailio of two SIPp p99s (ms); SIPp reports 0 for anything under its
    4 ms clock tick, so a 0 is treated as "< tick" and the ratio becomes a bound."""
    if c is None or k is None:
        return "-"
    if c == 0 and k == 0:
        return f"1.00 (both < {tick:g} ms)"
    if k == 0:
        return f"≥ {c / tick:.2f} (Kamailio < {tick:g} ms)"
    if c == 0:
        return f"≤ {tick / k:.2f} (confab < {tick:g} ms)"
    return f"{c / k:.2f}"


def presence_section(w, PR, PK):
    """Presence: confab vs Kamailio (same lib/presence.py arguments, same run)."""
    w("## Presence (PUBLISH + SUBSCRIBE/NOTIFY)\n")
    if not PR and not PK:
        w("not run\n")
        return
    P0 = PR or PK
    w(f"{P0['presentities']} presentities × {P0['watchers_per_presentity']} watchers = "
      f"{P0['subscriptions']} subscriptions over UDP; every PUBLISH fans out to "
      f"{P0['watchers_per_presentity']} NOTIFYs, counted when the SIPp watchers receive them. "
      "Same lib/presence.py arguments for both servers; Kamailio = kamailio.cfg with "
      "`-A WITH_PRESENCE` (presence + presence_xml, presentities and subscriptions in shared "
      "memory, no DB; see bench/README.md). PUBLISH p99 = SIPp p99 of PUBLISH → 407 → "
      "PUBLISH+auth → 200, ms (4 ms granularity: a ratio of two small p99s is noise). "
      "PUBLISH→NOTIFY: from the publisher sending a probe presentity's authenticated PUBLISH "
      "to a watcher receiving each of its NOTIFYs (wall clock, SIPp <log> lines, every "
      "`--probe-every`th presentity; count in brackets).\n")
    if PR and PK and (PR["presentities"], PR["watchers_per_presentity"]) != (PK["presentities"], PK["watchers_per_presentity"]):
        w("**WARNING: the two servers ran with different presence sizes; the ratios are not comparable.**\n")

    def sub(P):
        return (P or {}).get("subscribe") or {}

    def ceil(P):
        return (P or {}).get("ceiling")

    def p99(step):
        return report.rtd((step or {}).get("rtt_ms"), "p99")

    def cell(P, v):
        return "not run" if not P else v

    def capped(P):
        return " (capped)" if P and report.ceiling_capped(P) else ""

    # highest PUBLISH rate that passed on both servers: p99 at identical offered load
    passed = lambda P: {round(st["publish_rate"], 3): st for st in (P or {}).get("steps", [])
                        if st["pass"] and st["tag"] in ("ramp", "bisect")}
    both = sorted(set(passed(PR)) & set(passed(PK)))
    common = both[-1] if both else None
    cr, kr = ceil(PR), ceil(PK)
    rows = []
    rows.append(("subscriptions ok / offered",
                 cell(PR, f"{sub(PR).get('ok')} / {sub(PR).get('offered')}"),
                 cell(PK, f"{sub(PK).get('ok')} / {sub(PK).get('offered')}"), "-"))
    rows.append(("SUBSCRIBE p50/p99 ms (incl. 407)", cell(PR, lat(sub(PR).get("rtt_ms"))),
                 cell(PK, lat(sub(PK).get("rtt_ms"))), "-"))
    bc, bk = (PR or {}).get("pss_per_subscription_bytes"), (PK or {}).get("pss_per_subscription_bytes")
    rb = ratio(bc, bk) if bc and bk and bk > 0 else None
    rows.append(("PSS per subscription, B (lower is better)", cell(PR, num(bc)), cell(PK, num(bk)),
                 num(rb, 2) if rb else "-"))
    lc, lk = (PR or {}).get("lync_peak"), (PK or {}).get("lync_peak")
    rows.append((f"PUBLISH p50/p99 ms at the Lync peak ({(lc or lk or {}).get('publish_rate', 0):g} PUBLISH/s; lower is better)",
                 cell(PR, lat((lc or {}).get("rtt_ms"))), cell(PK, lat((lk or {}).get("rtt_ms"))),
                 p99_ratio(p99(lc), p99(lk))))
    if common is not None:
        a, b = passed(PR)[common], passed(PK)[common]
        rows.append((f"**PUBLISH p99 ms** at {common:g} PUBLISH/s (highest rate both passed; lower is better)",
                     num(p99(a)), num(p99(b)), f"**{p99_ratio(p99(a), p99(b))}**"))
        rows.append((f"PUBLISH→NOTIFY p50/p99/max ms (probes) at {common:g} PUBLISH/s",
                     report.notify_delay(a), report.notify_delay(b), "-"))
        rows.append((f"server CPU cores at {common:g} PUBLISH/s", num(a["cpu"].get("server_cores"), 2),
                     num(b["cpu"].get("server_cores"), 2),
                     num(ratio(a["cpu"].get("server_cores"), b["cpu"].get("server_cores")), 2)
                     if b["cpu"].get("server_cores") else "-"))
    r = ratio((cr or {}).get("notify_rate"), (kr or {}).get("notify_rate"))
    note = " — n/a: ramp capped by --max-publish-rate" if capped(PR) and capped(PK) else (
        " — confab capped: real ratio higher" if capped(PR) else (
            " — Kamailio capped: real ratio lower" if capped(PK) else ""))
    rows.append(("**NOTIFY/s ceiling** (highest passing step; higher is better)",
                 cell(PR, f"{num((cr or {}).get('notify_rate'))}{capped(PR)}"),
                 cell(PK, f"{num((kr or {}).get('notify_rate'))}{capped(PK)}"),
                 (f"**{num(r, 2)}**" if r else "-") + note))
    rows.append(("PUBLISH/s at the ceiling / its PUBLISH p99 ms",
                 cell(PR, f"{num((cr or {}).get('publish_rate'))} / {num(p99(cr))}"),
                 cell(PK, f"{num((kr or {}).get('publish_rate'))} / {num(p99(kr))}"), "-"))
    rows.append(("PUBLISH→NOTIFY p50/p99/max ms at the ceiling (probes)",
                 cell(PR, report.notify_delay(cr or {})), cell(PK, report.notify_delay(kr or {})), "-"))
    w("| measure | confab | Kamailio | confab/Kamailio |")
    w("|---|---|---|---|")
    for row in rows:
        w("| " + " | ".join(row) + " |")
    w("")
    for name, P in (("confab", PR), ("Kamailio", PK)):
        if not P:
            continue
        w(f"<details><summary>{name}: every presence step</summary>\n")
        if P.get("error"):
            w(f"ERROR: {P['error']}\n")
        w(report.presence_steps(P))
        w("\n</details>\n")


def main():
    run = Path(sys.argv[1])
    smoke = "--smoke" in sys.argv
    C = load(run / "confab" / "results.json") or {}
    K = load(run / "kamailio" / "results.json") or {}
    PR = load(run / "confab" / "presence" / "presence.json")
    PK = load(run / "kamailio" / "presence" / "presence.json")
    out = []
    w = out.append
    meta = C.get("meta") or K.get("meta") or {}
    w(f"# confab vs Kamailio — bench run {run.name}\n")
    if smoke:
        w("**SMOKE RUN**: a few seconds per step, small user counts, rates capped low "
          "(`--quick`). These numbers only show the harness works; they are not results.\n")
    w(f"- machine: {meta.get('cpus', os.cpu_count())} CPUs ({meta.get('cpu_model', '?')}), "
      f"kernel {meta.get('kernel', os.uname().release)}, "
      f"{(meta.get('mem_total_kb') or 0) / 1048576:.1f} GiB RAM; "
      f"SIPp ({meta.get('sipp_version', '?')}) runs on the same cores as the server under test")
    w(f"- confab: {C.get('meta', {}).get('server_version', '-')}; "
      f"Kamailio: {K.get('meta', {}).get('server_version', '-')} (bench/kamailio/kamailio.cfg)")
    w(f"- confab run {C.get('meta', {}).get('started', '-')} → {C.get('meta', {}).get('finished', '-')}; "
      f"Kamailio run {K.get('meta', {}).get('started', '-')} → {K.get('meta', {}).get('finished', '-')} (same machine, back to back)")
    cal = [(n, (R.get("calibration") or [{}])[0]) for n, R in (("confab", C), ("kamailio", K)) if R]
    if cal:
        w("- CPU yardstick at start of each run (sha256 200 MiB / python loop, ms; equal = same machine speed): "
          + ", ".join(f"{n} {c.get('sha256_200MiB_ms', '-')}/{c.get('pyloop_2M_ms', '-')}" for n, c in cal))
    w("")
    w("## Rates (highest sustained rate with < 0.1 % failures, confirmed by a longer run)\n")
    w("Latency = SIPp p50 / p99 of the whole procedure incl. the digest challenge, ms "
      "(4 ms clock granularity). CPU = server cores used during the confirm run "
      "(of 2; SIPp used the rest). RSS/PSS = server memory after the run.\n")
    w("| scenario | transport | confab | Kamailio | confab/Kamailio | target | confab p50/p99 ms | Kamailio p50/p99 ms | CPU confab / Kamailio | PSS MiB confab / Kamailio |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for t in ("register", "message", "call"):
        for tr in ("udp", "tcp"):
            c = (C.get("throughput", {}).get(t) or {}).get(tr)
            k = (K.get("throughput", {}).get(t) or {}).get(tr)
            if not c and not k:
                continue
            cc, kc = (c or {}).get("confirm") or {}, (k or {}).get("confirm") or {}
            cr, kr = (c or {}).get("max_rate"), (k or {}).get("max_rate")
            r = ratio(cr, kr)
            capped = " (capped)" if (c or {}).get("capped_by_max_rate") else ""
            kcapped = " (capped)" if (k or {}).get("capped_by_max_rate") else ""
            mem = lambda x: (x.get("mem") or {}).get("pss_kb")
            w(f"| {LABEL[t]} | {tr} | {num(cr)} {UNIT[t]}{capped} | {num(kr)} {UNIT[t]}{kcapped} | "
              f"{num(r, 2) if r else '-'} | {'n/a: ramp capped by --max-rate' if capped or kcapped else verdict(r, 1.2)} | {lat(cc.get('rtt_ms'))} | {lat(kc.get('rtt_ms'))} | "
              f"{num((cc.get('cpu') or {}).get('server_cores'), 2)} / {num((kc.get('cpu') or {}).get('server_cores'), 2)} | "
              f"{num((mem(cc) or 0) / 1024, 1) if mem(cc) else '-'} / {num((mem(kc) or 0) / 1024, 1) if mem(kc) else '-'} |")
    w("")
    fr = [(t, tr) for t in ("register", "message", "call") for tr in ("udp", "tcp")
          if any(((R.get("throughput", {}).get(t) or {}).get(tr) or {}).get("at_fraction")
                 for R in (C, K))]
    if fr:
        w("## Latency below the knee\n")
        w("One step as long as the confirmation run at a fraction (`--load-fraction`, default "
          "80 %) of each server's own confirmed maximum. p99 = SIPp p99 of the whole procedure, "
          "ms (4 ms clock); target p99 < 50 ms.\n")
        w("| scenario | transport | confab rate | confab p50/p99 ms | confab CPU | Kamailio rate | Kamailio p50/p99 ms | Kamailio CPU | target |")
        w("|---|---|---|---|---|---|---|---|---|")
        for t, tr in fr:
            c = ((C.get("throughput", {}).get(t) or {}).get(tr) or {}).get("at_fraction") or {}
            k = ((K.get("throughput", {}).get(t) or {}).get(tr) or {}).get("at_fraction") or {}
            p99c = pct(c.get("rtt_ms"), "p99")
            ok = c.get("pass") and p99c is not None and p99c < 50
            w(f"| {LABEL[t]} | {tr} | {num(c.get('rate'))} {UNIT[t]} | {lat(c.get('rtt_ms'))} | "
              f"{num((c.get('cpu') or {}).get('server_cores'), 2)} | {num(k.get('rate'))} {UNIT[t]} | "
              f"{lat(k.get('rtt_ms'))} | {num((k.get('cpu') or {}).get('server_cores'), 2)} | "
              f"{('met' if ok else 'NOT met') if c else '-'} (confab p99 < 50 ms) |")
        w("")
    holds_c = C.get("hold") or []
    holds_k = K.get("hold") or []
    if holds_c or holds_k:
        w("## Registered endpoints held with refreshes\n")
        w("Memory per endpoint = (PSS while holding − PSS of a fresh server) / registered endpoints "
          "(PSS summed over the process tree: Kamailio's shared memory counted once). "
          "Refresh p99 = SIPp p99 of refresh REGISTER (with digest) → 200. "
          "CPU per refresh = server CPU while holding / refreshes per second.\n")
        w("| transport | endpoints (requested) | registered confab / Kamailio | bytes/endpoint confab | bytes/endpoint Kamailio | confab/Kamailio | target | PSS held MiB confab / Kamailio | refresh p50/p99 ms confab vs Kamailio | initial REGISTER p99 ms confab / Kamailio | CPU µs per refresh confab / Kamailio | notes |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        keys = []
        for h in holds_c + holds_k:
            kk = (h["transport"], h["requested"])
            if kk not in keys:
                keys.append(kk)

        def find(L, kk):
            return next((h for h in L if (h["transport"], h["requested"]) == kk), None)

        def us_per_refresh(h):
            if not h or not h.get("registered") or not h.get("cpu_hold"):
                return None
            per_s = h["registered"] / h["refresh_secs"]
            return h["cpu_hold"]["server_cores"] / per_s * 1e6

        for kk in keys:
            c, k = find(holds_c, kk), find(holds_k, kk)
            cb = ((c or {}).get("per_user_bytes") or {}).get("pss")
            kb = ((k or {}).get("per_user_bytes") or {}).get("pss")
            r = ratio(cb, kb) if cb and kb and kb > 0 else None
            notes = "; ".join(x for x in ((c or {}).get("capped_note"), (k or {}).get("capped_note"),
                                          (c or {}).get("skipped"), (k or {}).get("skipped")) if x)
            p99c, p99k = pct((c or {}).get("rtt_ms"), "p99", 1), pct((k or {}).get("rtt_ms"), "p99", 1)
            pssc = ((c or {}).get("mem_held") or {}).get("pss_kb")
            pssk = ((k or {}).get("mem_held") or {}).get("pss_kb")
            w(f"| {kk[0]} | {(c or k).get('users', '-')} ({kk[1]}) | {(c or {}).get('registered', '-')} / {(k or {}).get('registered', '-')} | "
              f"{num(cb)} | {num(kb)} | {num(r, 2) if r else '-'} | {verdict(r, 1.0, higher_better=False) if r else 'n/a'} | "
              f"{num(pssc / 1024, 1) if pssc else '-'} / {num(pssk / 1024, 1) if pssk else '-'} | "
              f"{lat((c or {}).get('rtt_ms'), 2)} vs {lat((k or {}).get('rtt_ms'), 2)} (target p99 < 50) | "
              f"{num(p99c)} / {num(p99k)} | {num(us_per_refresh(c))} / {num(us_per_refresh(k))} | {notes} |")
        w("")
    presence_section(w, PR, PK)
    micro = run / "micro.txt"
    if micro.exists():
        w("## Micro-benchmarks (cargo bench)\n")
        w("```")
        w(micro.read_text().strip())
        w("```\n")
    w(f"_written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by bench/lib/compare.py; "
      "per-server details: confab/summary.md, kamailio/summary.md, {confab,kamailio}/presence/presence.json_")
    md = "\n".join(out) + "\n"
    (run / "summary.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
