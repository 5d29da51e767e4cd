"""Report writers: ``report.json`` (schema-checked), ``junit.xml``, ``report.html`` and the
signed evidence bundle. Everything passes through :func:`conformance.redact.redact` first.
"""
from __future__ import annotations

import html
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from .evidence.bundle import bundle_files, fingerprint, load_signing_key
from .redact import redact, redact_text
from .results import RunResults, evidence_name

__all__ = ["write_all", "prepare_report_dir", "INTERRUPTED_MARKER", "validate_report", "REPORT_SCHEMA_PATH", "render_html", "render_junit"]

REPORT_SCHEMA_PATH = Path(__file__).resolve().parent / "report.schema.json"


@cache
def _schema() -> dict[str, Any]:
    return json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_report(report: dict[str, Any]) -> list[str]:
    """Schema errors of a report (empty when valid)."""
    v = jsonschema.Draft202012Validator(_schema())
    return [f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in v.iter_errors(report)]


def render_junit(results: RunResults) -> bytes:
    suite = ET.Element("testsuite", name="conformance", tests=str(len(results.checks)))
    report = results.to_report()
    suite_props = ET.SubElement(suite, "properties")
    for m in report["milestones"]:  # per-milestone verdicts, in the gatekeeper's test wording
        ET.SubElement(suite_props, "property", name=f"milestone.{m['id']}",
                      value=f"{m['verdict']}: {m['test']} ({m['requirements']} requirements)")
    ET.SubElement(suite_props, "property", name="selection.provenance",
                  value=",".join(report["selection"]["provenance"]))
    by_id = {r.id: r for r in results.profile_requirements}
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    for c in results.checks:
        module, _, name = c.nodeid.rpartition("::")
        case = ET.SubElement(suite, "testcase", classname=module.replace("/", ".").removesuffix(".py"),
                             name=name or c.nodeid, time=f"{c.duration:.3f}")
        props = ET.SubElement(case, "properties")
        for rid in c.requirements:
            ET.SubElement(props, "property", name="requirement", value=rid)
        for rid in c.requirements:
            if rid in by_id:
                ET.SubElement(props, "property", name="milestone", value=by_id[rid].milestone)
                ET.SubElement(props, "property", name="provenance", value=by_id[rid].provenance)
        ET.SubElement(props, "property", name="verdict", value=c.verdict.value)
        msg = redact_text(c.message)
        if c.verdict.value == "FAIL":
            ET.SubElement(case, "failure", message=msg.splitlines()[0] if msg else "FAIL").text = msg
            counts["failures"] += 1
        elif c.verdict.value == "ERROR":
            ET.SubElement(case, "error", message=msg.splitlines()[0] if msg else "ERROR").text = msg
            counts["errors"] += 1
        elif c.verdict.value in ("NOT_TESTED", "NOT_APPLICABLE"):
            ET.SubElement(case, "skipped", message=f"{c.verdict.value}: {msg}")
            counts["skipped"] += 1
        elif c.verdict.value == "WARN":
            ET.SubElement(case, "system-out").text = f"WARN (SHOULD violated): {msg}"
    for k, v in counts.items():
        suite.set(k, str(v))
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "WARN": "#bf8700", "NOT_APPLICABLE": "#6e7781",
            "NOT_TESTED": "#8250df", "ERROR": "#a40e26"}


def _chart(by_area: dict[str, dict[str, int]]) -> str:
    """An inline SVG stacked bar per area: no script, no external asset."""
    rows, y = [], 10
    width = 420
    for area, counts in by_area.items():
        total = sum(counts.values()) or 1
        x = 110
        rows.append(f'<text x="0" y="{y + 13}" class="lbl">{html.escape(area)}</text>')
        for verdict, n in counts.items():
            if not n:
                continue
            w = width * n / total
            rows.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{_COLOURS[verdict]}">'
                        f'<title>{area}: {n} {verdict}</title></rect>')
            x += w
        rows.append(f'<text x="{110 + width + 8}" y="{y + 13}" class="lbl">{total}</text>')
        y += 26
    return (f'<svg role="img" aria-label="verdicts per area" width="{110 + width + 50}" height="{y + 4}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>')


def _milestones_html(milestones: list[dict[str, Any]]) -> str:
    """The six milestones at a glance: one tile each, coloured by verdict, with the wording of
    the gatekeeper's own test (older reports without milestones show nothing)."""
    if not milestones:
        return ""
    e = html.escape
    tiles = "".join(
        f"<li class='ms' data-milestone='{e(m['id'])}' data-verdict='{e(m['verdict'])}' "
        f"style='border-top-color:{_COLOURS[m['verdict']]}'>"
        f"<span class='badge' style='background:{_COLOURS[m['verdict']]}'>{m['verdict'].replace('_', ' ')}</span>"
        f"<strong>{e(m['id'])}</strong> {e(m['name'])}"
        f"<q>{e(m['test'])}</q>"
        f"<small>{m['requirements']} requirement(s)"
        f"{(' · failing: ' + e(', '.join(m['failing']))) if m['failing'] else ''}</small></li>"
        for m in milestones)
    return f"<h2>Milestones</h2><ol id='milestones'>{tiles}</ol>"


def _selection_html(selection: dict[str, Any] | None) -> str:
    if not selection:
        return ""
    e = html.escape
    what = "provenance " + ", ".join(selection["provenance"])
    if selection["requirements"]:
        what += " · requirements " + ", ".join(selection["requirements"])
    note = "" if selection["complete"] else " <strong>(partial selection: not a certification run)</strong>"
    return f"<dt>Selection</dt><dd id='selection'>{e(what)}{note}</dd>"


def _provenance_text(r: dict[str, Any]) -> str:
    p = r.get("provenance")
    if not p:
        return ""
    detail = p.get("source") if p["basis"] != "profile" else p.get("reason")
    return f"{p['basis']}" + (f" ({detail})" if detail else "")


_BASIS_TEXT = {
    "harness-attested": "evidence: harness-attested — every check rests in part on the provider "
                        "harness' word (what it says it surfaced or reported), which no wire exchange shows",
    "mixed": "evidence: mixed — some checks rest in part on the provider harness' word",
}


def _basis_html(r: dict[str, Any]) -> str:
    basis = r.get("evidence_basis")
    if basis not in _BASIS_TEXT:
        return ""
    marked = [c["nodeid"].rsplit("::", 1)[-1] for c in r["checks"] if c.get("basis") == "harness-attested"]
    return (f"<p class='meta basis' data-basis='{html.escape(basis)}'>{html.escape(_BASIS_TEXT[basis])}"
            f" ({html.escape(', '.join(marked))})</p>")


def _harness_only_html(ids: list[str]) -> str:
    if not ids:
        return ""
    links = ", ".join(f"<a href='#{html.escape(i)}'>{html.escape(i)}</a>" for i in ids)
    return (f"<p id='harness-attested'>{len(ids)} requirement(s) rest on the provider harness' "
            f"word alone (harness-attested): {links}.</p>")


def render_html(report: dict[str, Any], evidence: dict[str, list[dict[str, Any]]],
                extra_html: str = "") -> str:
    """The report page; ``extra_html`` (already escaped, e.g. the load section of
    ``conformance.load.report_html``) goes before the requirement list."""
    e = html.escape
    result = report["result"]
    s = report["summary"]
    area_rows = "".join(
        f"<tr><td>{e(a)}</td>" + "".join(f"<td class='n'>{c[v]}</td>" for v in _COLOURS) + "</tr>"
        for a, c in s["by_area"].items())
    head = "".join(f"<th>{v.replace('_', ' ')}</th>" for v in _COLOURS)
    req_rows = []
    for r in report["requirements"]:
        ev_lines = []
        for path in r["evidence"]:
            for entry in evidence.get(path, [])[:40]:
                ev_lines.append(json.dumps(entry, sort_keys=True)[:400])
        ev = ("<details><summary>wire evidence ({} entries)</summary><pre>{}</pre></details>".format(
            len(ev_lines), e("\n".join(ev_lines)))) if ev_lines else ""
        msg = f"<pre class='msg'>{e(r['message'])}</pre>" if r["message"] else ""
        req_rows.append(
            f"<section class='req v-{r['verdict']}' id='{e(r['id'])}'>"
            f"<h3><span class='badge' style='background:{_COLOURS[r['verdict']]}'>{r['verdict'].replace('_', ' ')}</span> "
            f"{e(r['id'])} — {e(r['title'])}</h3>"
            f"<p class='meta'>{e(r['level'])} · {e(r['role'])} · {e(r['area'])} · §{e(r['section'])} · "
            f"{(e(r['milestone']) + ' · ') if r.get('milestone') else ''}"
            f"{len(r['checks'])} check(s), {r['duration']:.2f} s</p>"
            + (f"<p class='meta prov' data-provenance='{e(r['provenance']['basis'])}'>provenance: "
               f"{e(_provenance_text(r))}</p>" if r.get("provenance") else "") + _basis_html(r) +
            f"<blockquote>{e(r['text'])}</blockquote>{msg}{ev}"
            f"<p class='rerun'>Rerun: <code>{e(r['rerun'])}</code></p></section>")
    attention = [r for r in report["requirements"] if r["verdict"] in ("FAIL", "ERROR", "WARN", "NOT_TESTED")]
    attention_html = ""
    if attention:
        items = "".join(
            f"<li><a href='#{e(r['id'])}'><span class='badge' style='background:{_COLOURS[r['verdict']]}'>"
            f"{r['verdict'].replace('_', ' ')}</span> {e(r['id'])} — {e(r['title'])}</a>"
            f"{(': ' + e(r['message'].splitlines()[0][:160])) if r['message'] else ''}</li>"
            for r in sorted(attention, key=lambda r: ["ERROR", "FAIL", "WARN", "NOT_TESTED"].index(r["verdict"])))
        attention_html = f"<h2>Needs attention ({len(attention)})</h2><ul id='attention'>{items}</ul>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Conformance report — {e(report['profile']['name'])} {e(report['profile']['version'])} — {result}</title>
<style>
body{{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}}
main{{max-width:980px;margin:0 auto;padding:24px}}
.result{{font-size:28px;font-weight:700;padding:16px 20px;border-radius:8px;color:#fff}}
.result.PASS{{background:#1a7f37}}.result.FAIL{{background:#cf222e}}.result.INCOMPLETE{{background:#8250df}}
table{{border-collapse:collapse;background:#fff;margin:12px 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px}}
td.n{{text-align:right}}.lbl{{font:12px system-ui,sans-serif;fill:#1f2328}}
.req{{background:#fff;border:1px solid #d0d7de;border-left-width:6px;border-radius:6px;margin:12px 0;padding:8px 14px}}
.v-PASS{{border-left-color:#1a7f37}}.v-FAIL,.v-ERROR{{border-left-color:#cf222e}}.v-WARN{{border-left-color:#bf8700}}
.v-NOT_TESTED{{border-left-color:#8250df}}.v-NOT_APPLICABLE{{border-left-color:#6e7781}}
.badge{{color:#fff;border-radius:4px;padding:1px 6px;font-size:12px;vertical-align:middle}}
h3{{margin:6px 0;font-size:16px}}.meta{{color:#57606a;margin:0;font-size:13px}}
blockquote{{margin:8px 0;padding:4px 10px;border-left:3px solid #d0d7de;color:#31363b}}
pre{{white-space:pre-wrap;background:#f6f8fa;padding:8px;border-radius:4px;font-size:12px;overflow:auto}}
.rerun code{{font-size:12px}}dl{{display:grid;grid-template-columns:max-content auto;gap:2px 12px}}dt{{color:#57606a}}
#milestones{{display:grid;grid-template-columns:repeat(3,1fr);gap:10px;list-style:none;padding:0}}
.ms{{background:#fff;border:1px solid #d0d7de;border-top-width:6px;border-radius:6px;padding:8px 10px}}
.ms q{{display:block;margin:4px 0;color:#31363b;font-style:italic}}.ms small{{color:#57606a}}
</style></head><body><main>
<div class="result {result}" id="overall">{result}: profile {e(report['profile']['name'])} {e(report['profile']['version'])}</div>
<dl>
<dt>Target</dt><dd>{e(report['target'])}</dd>
<dt>Harness</dt><dd>{e(report['harness'] or 'none')}</dd>
<dt>Kit</dt><dd>{e(report['kit']['version'])} · vectors {e(report['vectors_version'])}</dd>
<dt>Run</dt><dd>{e(report['started'])} → {e(report['finished'])}{' · certification mode' if report['certify'] else ''}</dd>
{"<dt>TLS</dt><dd><strong>--insecure: certificates were not verified</strong></dd>" if report['insecure'] else ""}
<dt>Declaration</dt><dd>{e(report['declaration_sha256'] or 'none')}</dd>
<dt>Chat binding</dt><dd>{e(report.get('wire', 'open'))}</dd>
{_selection_html(report.get('selection'))}
</dl>
{_milestones_html(report.get('milestones', []))}
<h2>Summary by area</h2>
<table id="summary"><tr><th>area</th>{head}</tr>{area_rows}
<tr><th>total</th>{''.join(f"<th class='n' data-verdict='{v}'>{s['by_verdict'][v]}</th>" for v in _COLOURS)}</tr></table>
{_chart(s['by_area'])}
<p>{s['requirements']} requirements, {s['checks']} checks.</p>
{_harness_only_html(s.get('harness_attested', []))}
{attention_html}
{extra_html}
<h2>Requirements</h2>
{''.join(req_rows)}
</main></body></html>
"""


REPORT_FILES = ("report.json", "junit.xml", "report.html", "evidence.zip", "evidence.zip.sig",
                "evidence.pub.pem")
INTERRUPTED_MARKER = "INTERRUPTED"
PREVIOUS_DIR = "previous"
_LOCK = ".conformance.lock"


@contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """Serialise the report-folder steps of concurrent runs (POSIX advisory lock), so two runs
    into one folder never leave one run's report.json beside another's evidence.zip."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / _LOCK, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX: renames still keep each file whole
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_report_dir(out: Path, started: str) -> None:
    """At session start: move a previous run's reports into ``previous/`` and leave an
    ``INTERRUPTED`` marker that only a finished run removes, so a folder is never showing an
    older green report as if it were this run's."""
    with _folder_lock(out):
        old = [out / n for n in (*REPORT_FILES, INTERRUPTED_MARKER) if (out / n).exists()]
        if old:
            prev = out / PREVIOUS_DIR
            prev.mkdir(exist_ok=True)
            for f in old:
                os.replace(f, prev / f.name)
        _atomic_write(out / INTERRUPTED_MARKER,
                      f"run started {started} (pid {os.getpid()}) has not finished; the reports "
                      f"beside this file, if any, are partial\n".encode())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_all(results: RunResults, out: Path, *, signing_key: str | None = None,
              interrupted: str | None = None, attachments: dict[str, bytes] | None = None,
              extra_html: str = "") -> dict[str, Path]:
    """Render every report in memory, then rename each into place under the folder lock.

    ``interrupted`` (a reason) marks a partial report: ``"interrupted": true`` in
    ``report.json``, never a PASS result, and the ``INTERRUPTED`` marker kept beside it.
    ``attachments`` (bundle path -> bytes, e.g. Locust's CSV/HTML stats) go into the evidence
    bundle; ``extra_html`` into the HTML report (see :func:`render_html`).
    """
    out.mkdir(parents=True, exist_ok=True)
    key = load_signing_key(signing_key)
    report = results.to_report()
    report["signer_fingerprint"] = fingerprint(key)
    report["interrupted"] = bool(interrupted)
    if interrupted and report["result"] == "PASS":
        report["result"] = "INCOMPLETE"
    report = redact(report)
    errors = validate_report(report)
    if errors:  # a bug in the kit: say so loudly rather than write an invalid report
        raise RuntimeError("report.json would not match its schema: " + "; ".join(errors[:5]))
    evidence = {f"wire/{evidence_name(c.nodeid)}.jsonl": redact(c.evidence) for c in results.checks if c.evidence}
    files: dict[str, bytes] = {
        "report.json": json.dumps(report, indent=2, sort_keys=True).encode(),
        "junit.xml": render_junit(results),
        "report.html": render_html(report, evidence, extra_html).encode(),
    }
    for name, data in (attachments or {}).items():
        files.setdefault(name, data)
    for name, entries in evidence.items():
        files[name] = "".join(json.dumps(x, sort_keys=True) + "\n" for x in entries).encode()
    outputs = {name: files[name] for name in ("report.json", "junit.xml", "report.html")}
    outputs.update(bundle_files(files, report, key))
    paths = {}
    with _folder_lock(out):
        for name, data in outputs.items():
            _atomic_write(out / name, data)
            paths[name] = out / name
        marker = out / INTERRUPTED_MARKER
        if interrupted:
            _atomic_write(marker, f"run interrupted: {interrupted}; the reports here are partial "
                                  f"(report.json says \"interrupted\": true)\n".encode())
        else:
            with suppress(FileNotFoundError):
                marker.unlink()
    return paths
