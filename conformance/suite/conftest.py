"""Fixtures of the bundled suite. The session-wide :class:`~conformance.suite.kit.Kit` starts
the gatekeeper simulator and, with no ``--target``, the embedded reference provider."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance import allure_support
from conformance.catalog import load_catalog
from conformance.evidence_log import Evidence
from conformance.harness_client import HarnessClient, HarnessError
from conformance.plugin import DECLARATION_KEY, PROFILE_KEY, WIRE_KEY, option
from conformance.verdicts import NOT_TESTED_PREFIX, not_tested

from .kit import Kit, ProviderUser, start_kit

#: The wa binding's own rules (catalog ``wire: wa``): CHN-030..CHN-035.
WA_RULES = frozenset(r.id for r in load_catalog() if r.wire == "wa")

_VIOLATIONS = ("handshake_failed", "protocol_error")


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A check that fails while the client broke one of the wa binding's own rules (CHN-030..035)
    is blocked, not failed: the broken rule is reported on its own requirement, and every other
    check needs a working wa connection as a precondition (as ``new_user`` makes NOT_TESTED)."""
    report = yield
    kit = getattr(item, "funcargs", {}).get("kit")
    start = getattr(item, "_conformance_start", None)
    if (report.when != "call" or not report.failed or kit is None or start is None
            or kit.gk.settings.wire != "wa"):
        return report
    marker = item.get_closest_marker("requirement")
    if marker is not None and set(marker.args) & set(WA_RULES):
        return report
    broken = [e for e in kit.events(since=start)
              if e["kind"] in _VIOLATIONS and e["detail"].get("requirement") in WA_RULES]
    if broken:
        rules = sorted({e["detail"]["requirement"] for e in broken})
        e = broken[0]
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: {NOT_TESTED_PREFIX}blocked: the client broke the wa binding's "
                           f"{', '.join(rules)} ({e['kind']}: {e['detail'].get('detail')})")
    return report


@pytest.fixture(scope="session")
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    k = start_kit(profile=config.stash[PROFILE_KEY], declaration=config.stash[DECLARATION_KEY],
                  target=option(config, "target"), harness=option(config, "harness"),
                  gatekeeper_listen=option(config, "gatekeeper_listen") or "127.0.0.1:0",
                  gatekeeper_url=option(config, "gatekeeper_url"),
                  insecure=config.getoption("insecure"), worker=worker,
                  reference_faults=tuple(config.getoption("reference_fault")),
                  http2=config.getoption("http2"), wire=config.stash[WIRE_KEY])
    yield k
    k.close(keep_state=config.getoption("keep_state"))


@pytest.fixture(autouse=True)
def evidence(request: pytest.FixtureRequest, kit: Kit) -> Iterator[Evidence]:
    """This check's wire log; at teardown the simulator's events of the check are added."""
    ev = Evidence(request.node.nodeid)
    request.node._conformance_evidence = ev
    start = kit.mark()
    request.node._conformance_start = start
    allure = allure_support.enabled(request.config)
    if allure:
        from conformance.catalog import load_catalog
        from conformance.plugin import requirement_ids

        by_id = {r.id: r for r in load_catalog()}
        allure_support.label_check(request.node, [by_id[i] for i in requirement_ids(request.node)
                                                  if i in by_id])
    yield ev
    events = kit.events(since=start)
    from_provider = sum(1 for e in events if e["kind"] in
                        ("stanza_received", "enlist_request", "connected", "push_sent", "media_fetched"))
    ev.extend([{"kind": "gatekeeper:" + e["kind"], "login": e["login"], "t_gk": e["t"], **e["detail"]}
               for e in events], exchanges=from_provider)
    if allure:
        allure_support.attach_evidence(ev.entries, "see verdict")


@pytest.fixture
def harness(kit: Kit, evidence: Evidence) -> HarnessClient:
    if not kit.harness_url:
        not_tested("no --harness given: client requirements need the provider's harness")
    return kit.harness(evidence)


@pytest.fixture
def new_user(kit: Kit, harness: HarnessClient):
    """Factory: a fresh provider test user, enlisted and connected unless told otherwise."""
    def make(*, enlist: bool = True, connect: bool = True) -> ProviderUser:
        created = harness.create_user(kit.unique("+1555"))
        user = ProviderUser(created["user"], created["user_visible_id"])
        if enlist:
            # A check needs an enlisted, connected user as a precondition; when that fails the
            # check cannot judge its own requirement (the ENL/CHN checks judge the failure).
            try:
                user.login = harness.enlist(user.handle)["login"]
            except HarnessError as exc:
                not_tested(f"precondition failed: a fresh user could not enlist ({exc}); "
                           "see the enlistment requirements")
            if connect:
                try:
                    harness.connect(user.handle)
                except HarnessError as exc:
                    not_tested(f"precondition failed: a fresh user could not connect ({exc}); "
                               "see the chat-channel requirements")
        return user
    return make


@pytest.fixture
def g_user(kit: Kit):
    """Factory: a fresh simulated gatekeeper user (``consent`` opted_in by default)."""
    return kit.g_user
