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
from .catalog import AREAS, BASES, load_catalog
from .profile import ProfileError, load_declaration, load_profile
from .redact import redact_known
from .results import HARNESS_ATTESTED, CheckResult, RunResults
from .verdicts import NOT_APPLICABLE_PREFIX, NOT_TESTED_PREFIX, CheckFailed, Verdict

SUITE_DIR = Path(__file__).resolve().parent / "suite"
RESULTS_KEY = pytest.StashKey["RunResults"]()
WIRE_KEY = pytest.StashKey[str]()
#: The chat-channel bindings (spec §5.3); the simulator implements both.
WIRES = ("open", "wa")
_OPTIONS = [
    # (option, ini name, help, default)
    ("target", "conformance_target", "provider server base URL (omit for the embedded reference provider)", None),
    ("harness", "conformance_harness", "provider client harness URL", None),
    ("profile", "conformance_profile", "profile name or YAML path (default: core)", "core"),
    ("declaration", "conformance_declaration", "provider declaration YAML", None),
    ("report_dir", "conformance_report_dir", "where reports are written (default: reports/)", "reports"),
    ("gatekeeper_listen", "conformance_gatekeeper_listen", "host[:port] the gatekeeper simulator binds (default 127.0.0.1:0)", "127.0.0.1:0"),
    ("gatekeeper_url", "conformance_gatekeeper_url", "public URL of the simulator, for a provider not on this machine", None),
    ("wire", "conformance_wire", "chat-channel binding: open or wa (default: the declaration's wire, else open)", None),
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
    g.addoption("--http2", action="store_true", default=False,
                help="talk HTTP/2 (ALPN h2) to the provider server by default instead of HTTP/1.1")
    g.addoption("--certify", action="store_true", default=False,
                help="certification mode: NOT_TESTED on a required item fails the run")
    g.addoption("--req", action="append", default=[], metavar="ID",
                help="run only the checks of this requirement (repeatable)")
    g.addoption("--provenance", dest="conformance_provenance", default=None, metavar="BASIS[,BASIS]",
                help="run only requirements of these provenance classes: framework (what the "
                     "gatekeeper publishes), observed (WhatsApp client behaviour), profile (this "
                     "profile's choices); comma-separated; the report says which selection ran")
    g.addoption("--reference-fault", action="append", default=[], metavar="NAME",
                help="start the embedded reference provider with this named fault (repeatable; "
                     "for proving the suite, see `conformance serve-reference --list-faults`)")
    g.addoption("--keep-state", action="store_true", default=False,
                help="keep the run's temporary state (simulator and embedded provider keys, "
                     "sessions, SQLite) for debugging; by default it is deleted at the end")
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
    config.addinivalue_line("markers", "harness_attested: part of the check's verdict rests on the "
                            "provider harness' word alone (what it says it surfaced or reported)")
    if not is_conformance_run(config):
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE_DIR)]
    try:
        profile = load_profile(option(config, "profile") or "core")
        declaration = load_declaration(option(config, "declaration"))
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from exc
    profile = _without_load(profile)
    declared_wire = declaration.data.get("wire")
    wire = option(config, "wire") or declared_wire or "open"
    if wire not in WIRES:
        raise pytest.UsageError(f"--wire: {wire!r} is not one of {', '.join(WIRES)}")
    if declared_wire and wire != declared_wire:
        raise pytest.UsageError(f"--wire {wire} contradicts the declaration's wire: {declared_wire}")
    config.stash[WIRE_KEY] = wire
    for spec in config.getoption("area_timeout"):
        area, _, secs = spec.partition("=")
        if area not in AREAS.values() or not secs.replace(".", "", 1).isdigit():
            raise pytest.UsageError(f"--area-timeout wants AREA=SECONDS with AREA in {sorted(AREAS.values())}")
        profile.parameters.setdefault("timeouts", {})[area] = float(secs)
    faults = config.getoption("reference_fault")
    if faults and option(config, "target"):
        raise pytest.UsageError("--reference-fault applies to the embedded reference provider; "
                                "drop --target to use it")
    workers = getattr(config.option, "numprocesses", None)
    if (option(config, "target") and option(config, "harness") and workers not in (None, 0, "0")
            and not hasattr(config, "workerinput")):
        # Each xdist worker runs its own gatekeeper simulator, but a harness points its clients
        # at one gatekeeper (POST /reset): parallel workers would steal each other's clients.
        raise pytest.UsageError("-n/--numprocesses cannot be used with an external --harness: the "
                                "harness serves one gatekeeper at a time; run serially (the embedded "
                                "reference provider runs in parallel fine)")
    from .catalog import CatalogError
    from .catalog.cli import parse_bases

    try:
        bases = parse_bases(config.getoption("conformance_provenance"))
    except CatalogError as exc:
        raise pytest.UsageError(f"--provenance: {exc}") from None
    config.stash[PROVENANCE_KEY] = bases
    if bases != BASES and config.getoption("certify"):
        raise pytest.UsageError("--certify checks the whole profile: drop --provenance")
    config.stash[PROFILE_KEY] = profile
    config.stash[DECLARATION_KEY] = declaration
    if not hasattr(config, "workerinput"):  # the xdist controller (or a plain run) reports
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        unsupported_ok = declaration.unsupported & profile.optional
        config.stash[RESULTS_KEY] = RunResults(
            kit_version=__version__, profile_name=profile.name,
            profile_version=profile.profile_version,
            profile_requirements=list(profile.requirements),
            target=option(config, "target") or (
                f"embedded reference provider with faults {','.join(faults)}" if faults else ""),
            harness=option(config, "harness") or "",
            vectors_version=_vectors_version(), declaration_digest=declaration.digest,
            certify=config.getoption("certify"), insecure=config.getoption("insecure"),
            started=now, not_applicable=frozenset(unsupported_ok), wire=wire,
            provenance=bases, only_requirements=tuple(dict.fromkeys(config.getoption("req"))))
        if bases != BASES:  # the report lists only what was selected
            results = config.stash[RESULTS_KEY]
            results.profile_requirements = [r for r in results.profile_requirements
                                            if r.provenance in bases]
        if config.getoption("certify") and config.pluginmanager.hasplugin("rerunfailures"):
            if getattr(config.option, "reruns", 0):
                raise pytest.UsageError("--certify forbids reruns (--reruns)")


def _without_load(profile):
    """LOAD-* requirements are judged by ``conformance load`` (Locust traffic in processes of
    its own), not by checks collected here: drop them from a pytest run's profile, so the
    "every MUST has a check" rule and the report cover exactly what this run can judge."""
    import dataclasses

    if not any(r.area == "load" for r in profile.requirements):
        return profile
    rest = tuple(r for r in profile.requirements if r.area != "load")
    if not rest:
        raise pytest.UsageError(f"profile {profile.name} holds only load requirements (LOAD-*): "
                                "`conformance load` judges them, not pytest (docs/load.md)")
    return dataclasses.replace(profile, requirements=rest)


PROFILE_KEY = pytest.StashKey["object"]()
PROVENANCE_KEY = pytest.StashKey["tuple"]()
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
    bases = config.stash.get(PROVENANCE_KEY, BASES)
    selected = {rid for rid in in_profile if by_id[rid].provenance in bases}
    keep, drop = [], []
    for item in items:
        ids = set(requirement_ids(item))
        ok = bool(ids & selected) and (not wanted or bool(ids & wanted))
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Turn each phase's outcome into the check's verdict; publish it on the teardown report,
    when the check's evidence is complete (so a pass that exchanged nothing becomes ERROR)."""
    report = yield
    if not is_conformance_run(item.config) or not requirement_ids(item):
        return report
    ids = requirement_ids(item)
    if report.longrepr is not None:  # what the terminal and JUnit print, every phase
        shown = str(report.longrepr)
        if redact_known(shown) != shown:
            report.longrepr = redact_known(shown)
    state = item.stash.setdefault(_VERDICT_KEY, {})
    if report.when == "call":
        state["duration"] = report.duration
    if "verdict" not in state:
        verdict, message = _verdict_of(report, call, ids)
        if verdict is not None:
            state["verdict"], state["message"] = verdict, message
    if report.when != "teardown":
        return report
    verdict = state.get("verdict", Verdict.ERROR)
    message = state.get("message", "check did not run")
    evidence = getattr(item, "_conformance_evidence", None)
    exchanges = evidence.exchanges if evidence is not None else 0
    if verdict in (Verdict.PASS, Verdict.WARN) and exchanges == 0:
        verdict = Verdict.ERROR
        message = ("vacuous pass: the check exchanged nothing with the provider, so it proved "
                   "nothing (a kit bug or an unreachable provider)")
        report.outcome = "failed"
        report.longrepr = message
    if report.failed and verdict not in (Verdict.ERROR, Verdict.FAIL):
        verdict, message = Verdict.ERROR, f"teardown failed: {str(report.longrepr)[-1500:]}"
    # The run's own secrets (G's keys), by value, before anything leaves this process: the
    # controller that writes the reports under xdist never saw them registered.
    message = redact_known(message)
    report.user_properties += [
        ("requirements", ",".join(ids)), ("verdict", verdict.value), ("message", message[:4000]),
        ("duration", str(state.get("duration", 0.0))), ("exchanges", str(exchanges)),
        ("evidence", json.dumps(evidence.entries[-500:] if evidence is not None else [])),
        ("basis", HARNESS_ATTESTED if item.get_closest_marker("harness_attested") else "wire"),
    ]
    return report


_VERDICT_KEY = pytest.StashKey[dict]()


def _verdict_of(report: pytest.TestReport, call: pytest.CallInfo[None],
                ids: tuple[str, ...]) -> tuple[Verdict | None, str]:
    by_id = {r.id: r for r in load_catalog()}
    if report.when == "call" and report.passed:
        return Verdict.PASS, ""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(NOT_APPLICABLE_PREFIX):
            return Verdict.NOT_APPLICABLE, reason[len(NOT_APPLICABLE_PREFIX):]
        return Verdict.NOT_TESTED, reason.removeprefix(NOT_TESTED_PREFIX)
    if report.failed:
        exc = call.excinfo.value if call.excinfo else None
        if report.when == "call" and isinstance(exc, (AssertionError, CheckFailed)):
            if {by_id[r].level for r in ids if r in by_id} <= {"SHOULD", "MAY"}:
                report.outcome = "passed"  # a SHOULD violation never fails the run
                return Verdict.WARN, str(exc)
            return Verdict.FAIL, str(exc)
        text = f"{type(exc).__name__}: {exc}" if exc else str(report.longrepr)[-2000:]
        return Verdict.ERROR, text
    return None, ""


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
        duration=float(props.get("duration", report.duration)),
        message=props.get("message", ""),
        evidence=json.loads(props.get("evidence", "[]")),
        exchanges=int(props.get("exchanges", "0")),
        basis=props.get("basis", "wire"),
    ))


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config
    config = session.config
    if is_conformance_run(config) and RESULTS_KEY in config.stash and not config.option.collectonly:
        from .reporting import prepare_report_dir

        prepare_report_dir(Path(option(config, "report_dir") or "reports"), config.stash[RESULTS_KEY].started)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not is_conformance_run(config) or RESULTS_KEY not in config.stash:
        return
    if exitstatus == pytest.ExitCode.USAGE_ERROR or not session.testscollected \
            or config.option.collectonly:
        return  # nothing was checked: writing a report would only mislead (the INTERRUPTED
        # marker left at session start stays)
    interrupted = None
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        interrupted = "interrupted (SIGINT / KeyboardInterrupt)"
    elif exitstatus == pytest.ExitCode.INTERNAL_ERROR:
        interrupted = "the kit crashed (pytest internal error)"
    elif session.shouldstop or session.shouldfail:
        interrupted = f"stopped early: {session.shouldstop or session.shouldfail}"
    results = config.stash[RESULTS_KEY]
    results.finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for rid in results.not_applicable:
        results.checks.append(CheckResult(f"declaration::{rid}", (rid,), Verdict.NOT_APPLICABLE, 0.0,
                                          "declared unsupported; the profile allows it"))
    from .reporting import write_all

    out = Path(option(config, "report_dir") or "reports")
    config.stash[REPORT_PATHS_KEY] = write_all(results, out, signing_key=option(config, "signing_key"),
                                               interrupted=interrupted)
    from . import allure_support

    if allure_support.enabled(config):
        allure_support.write_milestone_verdicts(config, results.to_report())
    overall = results.overall()
    if overall != "PASS" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


REPORT_PATHS_KEY = pytest.StashKey["dict"]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not is_conformance_run(config) or RESULTS_KEY not in config.stash or config.option.collectonly:
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
    for m in report["milestones"]:
        tr.write_line(f"  {m['id']} {m['verdict']:14} {m['requirements']:3} req  \"{m['test']}\"")
    if not report["selection"]["complete"]:
        tr.write_line(f"  selection: provenance {','.join(report['selection']['provenance'])}"
                      + (f", requirements {','.join(report['selection']['requirements'])}"
                         if report["selection"]["requirements"] else "") + " (partial: not a certification run)")
    for r in report["requirements"]:
        if r["verdict"] in ("FAIL", "ERROR", "WARN"):
            first = (r["message"] or "").splitlines()[0:1]
            tr.write_line(f"  {r['verdict']:5} {r['id']} {r['title']}: {first[0] if first else ''}")
    tr.write_line(f"profile {results.profile_name} {results.profile_version} -> {report['result']}",
                  bold=True, green=report["result"] == "PASS", red=report["result"] != "PASS")
    paths = config.stash.get(REPORT_PATHS_KEY, {})
    if paths:
        tr.write_line("reports: " + ", ".join(str(p) for p in paths.values()))
