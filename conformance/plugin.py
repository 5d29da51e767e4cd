"""The pytest plugin (``pytest11`` entry point ``conformance``).

Inert unless a conformance run is asked for: ``--target URL`` (a provider), or ``--conformance``
(the embedded reference provider). Then it collects the bundled suite (``conformance/suite``),
checks every check's requirement IDs against the catalog, refuses a profile whose MUSTs lack a
check, turns outcomes into verdicts, prints a per-area summary and writes the reports.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import pytest

from . import __version__
from .catalog import AREAS, load_catalog
from .profile import ProfileError, load_declaration, load_profile
from .results import CheckResult, RunResults
from .verdicts import NOT_APPLICABLE_PREFIX, NOT_TESTED_PREFIX, CheckFailed, Verdict

SUITE_DIR = Path(__file__).resolve().parent / "suite"
RESULTS_KEY = pytest.StashKey["RunResults"]()
_OPTIONS = [
    # (option, ini name, help, default)
    ("target", "conformance_target", "provider server base URL (omit for the embedded reference provider)", None),
    ("harness", "conformance_harness", "provider client harness URL", None),
    ("profile", "conformance_profile", "profile name or YAML path (default: core)", "core"),
    ("declaration", "conformance_declaration", "provider declaration YAML", None),
    ("report_dir", "conformance_report_dir", "where reports are written (default: reports/)", "reports"),
    ("gatekeeper_listen", "conformance_gatekeeper_listen", "host[:port] the gatekeeper simulator binds (default 127.0.0.1:0)", "127.0.0.1:0"),
    ("gatekeeper_url", "conformance_gatekeeper_url", "public URL of the simulator, for a provider not on this machine", None),
    ("signing_key", "conformance_signing_key", "Ed25519 private key (PEM) that signs the evidence bundle", None),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("conformance", "messaging-interop conformance kit")
    for opt, ini, help_text, default in _OPTIONS:
        g.addoption(f"--{opt.replace('_', '-')}", dest=f"conformance_{opt}", default=None,
                    help=help_text)
        parser.addini(ini, help_text, default=default)
    g.addoption("--conformance", action="store_true", default=False,
                help="run the bundled conformance suite (implied by --target)")
    g.addoption("--insecure", action="store_true", default=False,
                help="accept self-signed TLS certificates (the report says so)")
    g.addoption("--certify", action="store_true", default=False,
                help="certification mode: NOT_TESTED on a required item fails the run")
    g.addoption("--req", action="append", default=[], metavar="ID",
                help="run only the checks of this requirement (repeatable)")
    g.addoption("--area-timeout", action="append", default=[], metavar="AREA=SECONDS",
                help="override one area's timeout (repeatable)")


def option(config: pytest.Config, name: str) -> str | None:
    val = config.getoption(f"conformance_{name}")
    if val is None:
        ini = next(i for o, i, _, _ in _OPTIONS if o == name)
        val = config.getini(ini) or None
    return val


def is_conformance_run(config: pytest.Config) -> bool:
    return bool(config.getoption("conformance") or option(config, "target"))


def pytest_configure(config: pytest.Config) -> None:
    for prefix, area in AREAS.items():
        config.addinivalue_line("markers", f"{area}: checks of the {area} area ({prefix}-*)")
    config.addinivalue_line("markers", "requirement(*ids): the requirement IDs a check enforces")
    if not is_conformance_run(config):
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE_DIR)]
    try:
        profile = load_profile(option(config, "profile") or "core")
        declaration = load_declaration(option(config, "declaration"))
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from exc
    for spec in config.getoption("area_timeout"):
        area, _, secs = spec.partition("=")
        if area not in AREAS.values() or not secs.replace(".", "", 1).isdigit():
            raise pytest.UsageError(f"--area-timeout wants AREA=SECONDS with AREA in {sorted(AREAS.values())}")
        profile.parameters.setdefault("timeouts", {})[area] = float(secs)
    config.stash[PROFILE_KEY] = profile
    config.stash[DECLARATION_KEY] = declaration
    if not hasattr(config, "workerinput"):  # the xdist controller (or a plain run) reports
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        unsupported_ok = declaration.unsupported & profile.optional
        config.stash[RESULTS_KEY] = RunResults(
            kit_version=__version__, profile_name=profile.name,
            profile_version=profile.profile_version,
            profile_requirements=list(profile.requirements),
            target=option(config, "target") or "", harness=option(config, "harness") or "",
            vectors_version=_vectors_version(), declaration_digest=declaration.digest,
            certify=config.getoption("certify"), insecure=config.getoption("insecure"),
            started=now, not_applicable=frozenset(unsupported_ok))
        if config.getoption("certify") and config.pluginmanager.hasplugin("rerunfailures"):
            if getattr(config.option, "reruns", 0):
                raise pytest.UsageError("--certify forbids reruns (--reruns)")


PROFILE_KEY = pytest.StashKey["object"]()
DECLARATION_KEY = pytest.StashKey["object"]()


def _vectors_version() -> str:
    try:
        from vectors import FORMAT_VERSION  # type: ignore[attr-defined]
        return str(FORMAT_VERSION)
    except Exception:  # noqa: BLE001 - vectors are optional in an installed kit
        return "unknown"


def requirement_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for m in item.iter_markers("requirement"):
        ids.extend(m.args)
    return tuple(dict.fromkeys(ids))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_conformance_run(config):
        return
    profile = config.stash[PROFILE_KEY]
    by_id = {r.id: r for r in load_catalog()}
    in_profile = profile.ids()
    unknown, covered = [], set()
    for item in items:
        ids = requirement_ids(item)
        if not ids:
            raise pytest.UsageError(f"check {item.nodeid} has no @requirement marker")
        for rid in ids:
            if rid not in by_id:
                unknown.append(f"{item.nodeid}: {rid}")
            else:
                covered.add(rid)
                item.add_marker(by_id[rid].area)
    if unknown:
        raise pytest.UsageError("checks name requirement IDs the catalog does not have:\n  "
                                + "\n  ".join(unknown))
    missing = sorted(r.id for r in profile.requirements if r.level == "MUST" and r.id not in covered)
    if missing:
        raise pytest.UsageError(f"profile {profile.name} has MUST requirements with no check: "
                                + ", ".join(missing))
    wanted = set(config.getoption("req"))
    for rid in wanted - set(by_id):
        raise pytest.UsageError(f"--req {rid}: unknown requirement")
    keep, drop = [], []
    for item in items:
        ids = set(requirement_ids(item))
        ok = bool(ids & in_profile) and (not wanted or bool(ids & wanted))
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if not is_conformance_run(item.config) or not requirement_ids(item):
        return report
    ids = requirement_ids(item)
    report.user_properties.append(("requirements", ",".join(ids)))
    by_id = {r.id: r for r in load_catalog()}
    verdict: Verdict | None = None
    message = ""
    if report.when == "call" and report.passed:
        verdict = Verdict.PASS
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(NOT_APPLICABLE_PREFIX):
            verdict, message = Verdict.NOT_APPLICABLE, reason[len(NOT_APPLICABLE_PREFIX):]
        else:
            verdict, message = Verdict.NOT_TESTED, reason.removeprefix(NOT_TESTED_PREFIX)
    elif report.failed:
        exc = call.excinfo.value if call.excinfo else None
        if report.when == "call" and isinstance(exc, (AssertionError, CheckFailed)):
            levels = {by_id[r].level for r in ids if r in by_id}
            if levels <= {"SHOULD", "MAY"}:
                verdict = Verdict.WARN
                report.outcome = "passed"  # a SHOULD violation never fails the run
            else:
                verdict = Verdict.FAIL
            message = str(exc)
        else:
            verdict = Verdict.ERROR
            message = f"{type(exc).__name__}: {exc}" if exc else str(report.longrepr)[-2000:]
    if verdict is not None:
        report.user_properties.append(("verdict", verdict.value))
        report.user_properties.append(("message", message[:4000]))
        evidence = getattr(item, "_conformance_evidence", None)
        if evidence is not None:
            report.user_properties.append(("evidence", json.dumps(evidence.entries[-500:])))
            report.user_properties.append(("exchanges", str(evidence.exchanges)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    if "verdict" not in props:
        return
    config = _CONFIG.get("config")
    if config is None or RESULTS_KEY not in config.stash:
        return
    results = config.stash[RESULTS_KEY]
    results.checks.append(CheckResult(
        nodeid=report.nodeid,
        requirements=tuple(props["requirements"].split(",")),
        verdict=Verdict(props["verdict"]),
        duration=report.duration,
        message=props.get("message", ""),
        evidence=json.loads(props.get("evidence", "[]")),
        exchanges=int(props.get("exchanges", "0")),
    ))


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not is_conformance_run(config) or RESULTS_KEY not in config.stash:
        return
    results = config.stash[RESULTS_KEY]
    results.finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for rid in results.not_applicable:
        results.checks.append(CheckResult(f"declaration::{rid}", (rid,), Verdict.NOT_APPLICABLE, 0.0,
                                          "declared unsupported; the profile allows it"))
    from .reporting import write_all

    out = Path(option(config, "report_dir") or "reports")
    config.stash[REPORT_PATHS_KEY] = write_all(results, out, signing_key=option(config, "signing_key"))
    overall = results.overall()
    if overall != "PASS" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


REPORT_PATHS_KEY = pytest.StashKey["dict"]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not is_conformance_run(config) or RESULTS_KEY not in config.stash:
        return
    results = config.stash[RESULTS_KEY]
    report = results.to_report()
    tr = terminalreporter
    tr.section("conformance summary")
    cols = [v.value for v in Verdict]
    tr.write_line(f"{'area':12}" + "".join(f"{c:>15}" for c in cols))
    for area, counts in report["summary"]["by_area"].items():
        tr.write_line(f"{area:12}" + "".join(f"{counts[c]:>15}" for c in cols))
    tot = report["summary"]["by_verdict"]
    tr.write_line(f"{'total':12}" + "".join(f"{tot[c]:>15}" for c in cols))
    for r in report["requirements"]:
        if r["verdict"] in ("FAIL", "ERROR", "WARN"):
            first = (r["message"] or "").splitlines()[0:1]
            tr.write_line(f"  {r['verdict']:5} {r['id']} {r['title']}: {first[0] if first else ''}")
    tr.write_line(f"profile {results.profile_name} {results.profile_version} -> {report['result']}",
                  bold=True, green=report["result"] == "PASS", red=report["result"] != "PASS")
    paths = config.stash.get(REPORT_PATHS_KEY, {})
    if paths:
        tr.write_line("reports: " + ", ".join(str(p) for p in paths.values()))
