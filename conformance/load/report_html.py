"""The load section of the HTML report: throughput over time, latency percentiles over time,
the provider's memory curve (inline SVG: no script, no external asset) and a table per request
kind. Kept apart from :mod:`conformance.reporting`, which only calls it through ``extra_html``.
"""
from __future__ import annotations

import html
from typing import Any

__all__ = ["render_load_section", "line_chart"]

_PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700")


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], *, unit: str,
               width: int = 640, height: int = 180) -> str:
    """One SVG line chart: ``series`` name -> [(x seconds, y)], shared axes starting at 0."""
    e = html.escape
    pts = [p for s in series.values() for p in s]
    if not pts:
        return f"<p>{e(title)}: no samples.</p>"
    x_max = max(x for x, _ in pts) or 1.0
    y_max = max(y for _, y in pts) or 1.0
    left, bottom, top, right = 56, 24, 20, 110
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + w * x / x_max

    def sy(y: float) -> float:
        return top + h - h * y / y_max

    parts = [f'<text x="{left}" y="14" class="lbl">{e(title)}</text>',
             f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#8c959f"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#8c959f"/>',
             f'<text x="{left - 4}" y="{top + 4}" class="lbl" text-anchor="end">{y_max:.4g}</text>',
             f'<text x="{left - 4}" y="{top + h}" class="lbl" text-anchor="end">0 {e(unit)}</text>',
             f'<text x="{left + w}" y="{top + h + 16}" class="lbl" text-anchor="end">{x_max:.0f} s</text>']
    for i, (name, s) in enumerate(series.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        if s:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{path}">'
                         f'<title>{e(name)}</title></polyline>')
        parts.append(f'<rect x="{left + w + 10}" y="{top + 14 * i}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{left + w + 24}" y="{top + 9 + 14 * i}" class="lbl">{e(name)}</text>')
    return (f'<svg role="img" aria-label="{e(title)}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def _series(history: list[dict[str, Any]], name: str, col: str) -> list[tuple[float, float]]:
    rows = [r for r in history if r.get("Name") == name and isinstance(r.get("Timestamp"), float)]
    if not rows:
        return []
    t0 = min(r["Timestamp"] for r in history if isinstance(r.get("Timestamp"), float))
    return [(r["Timestamp"] - t0, float(r[col])) for r in rows if isinstance(r.get(col), float)]


def render_load_section(settings: dict[str, Any], stats: dict[str, dict[str, Any]],
                        history: list[dict[str, Any]], observations: dict[str, Any],
                        workers: int) -> str:
    e = html.escape
    throughput = line_chart("throughput (all requests)", {
        "requests/s": _series(history, "Aggregated", "Requests/s"),
        "failures/s": _series(history, "Aggregated", "Failures/s")}, unit="/s")
    latency = line_chart("latency percentiles (all requests)", {
        p: _series(history, "Aggregated", p) for p in ("50%", "95%", "99%")}, unit="ms")
    mem = observations.get("memory", [])
    memory = ""
    if observations.get("memory_measured") and mem:
        t0 = mem[0][0]
        memory = line_chart("provider process resident memory", {
            "RSS MiB": [(t - t0, rss / 1048576) for t, rss in mem]}, unit="MiB")
    rows = []
    for name, r in sorted(stats.items()):
        if name == "Aggregated":
            continue
        rows.append("<tr>" + f"<td>{e(str(name))}</td>" + "".join(
            f"<td class='n'>{(r.get(c) or 0):.0f}</td>" for c in
            ("Request Count", "Failure Count", "50%", "95%", "99%", "Max Response Time")) +
            f"<td class='n'>{(r.get('Requests/s') or 0):.1f}</td></tr>")
    wakes = observations.get("wakes", [])
    woken = sum(1 for w in wakes if w.get("woken"))
    dur = settings.get("duration_s")
    return (f"<h2 id='load'>Load</h2>"
            f"<p>{e(str(dur))} s of Locust traffic, {workers or 'one local'} worker process(es); "
            f"media bodies verified: {float(settings['media'].get('verify_sample', 1)):.0%}; "
            f"push tokens signed: {observations.get('signatures', 0)} for "
            f"{observations.get('token_subjects', 0)} subjects (once per token lifetime); "
            f"wake-ups: {woken} of {len(wakes)} probed offline clients.</p>"
            f"{throughput}{latency}{memory}"
            "<table id='load-stats'><tr><th>request</th><th>count</th><th>failures</th><th>p50 ms</th>"
            "<th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>req/s</th></tr>"
            + "".join(rows) + "</table>"
            "<p>Rows named <code>(ramp)</code> are answers given while users were still "
            "starting: checked and counted, not timed (latency verdicts are of the steady load). "
            "Locust's own statistics (CSV, HTML) are in the evidence bundle under "
            "<code>load/</code>.</p>")
