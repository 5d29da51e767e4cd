"""``conformance load``: start the scene, run Locust (local, master + N workers, or a master
for a distributed fleet), judge, write the reports.

Locust runs as the ``locust`` command in child processes (``python -m locust``), never imported
here: this process stays free of gevent's monkey-patching, and a distributed worker on another
machine runs exactly the same command line.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.catalog import load_catalog
from conformance.embedded import first_line, stop_process
from conformance.profile import load_declaration, load_profile
from conformance.results import CheckResult, RunResults
from conformance.verdicts import Verdict

from .judge import Measured, judge, read_locust_csv, read_per_second
from .report_html import render_load_section
from .settings import load_settings

__all__ = ["LOCUSTFILE", "LoadRun", "run_load", "locust_command"]

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
#: Seconds the scene may take to start G, the provider, and enlist the users.
SCENE_START_S = 240.0
#: Seconds past the planned duration before a Locust process is stopped as hung.
LOCUST_GRACE_S = 90.0


class LoadResults(RunResults):
    """A load run's results: the report's rerun hint is ``conformance load``, not pytest."""

    def to_report(self, rerun_command: str = "conformance load --target {target}") -> dict[str, Any]:
        if self.target.startswith("embedded"):
            rerun_command = "conformance load" + (
                "".join(f" --reference-fault {f}" for f in self.target.partition(" with faults ")[2].split(",") if f))
        return super().to_report(rerun_command)


class LoadError(RuntimeError):
    """The load run could not be set up (scene, Locust): one clear line for the user."""


def locust_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scene_call(url: str, path: str, method: str = "GET", timeout: float = 30.0) -> Any:
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class LoadRun:
    """One run: ``start_scene`` → ``run_locust`` → ``finish`` (judge + reports)."""

    def __init__(self, *, profile: str = "load", declaration: str | None = None,
                 target: str | None = None, harness: str | None = None,
                 faults: tuple[str, ...] = (), duration_s: float | None = None,
                 workers: int = 0, expect_workers: int = 0, master_bind_host: str = "127.0.0.1",
                 master_port: int = 0, scene_listen: str = "127.0.0.1:0",
                 scene_url: str | None = None, insecure: bool = False,
                 gatekeeper_listen: str = "127.0.0.1:0", gatekeeper_url: str | None = None,
                 report_dir: Path = Path("reports/load"), signing_key: str | None = None,
                 quiet: bool = False) -> None:
        self.profile = load_profile(profile)
        self.declaration = load_declaration(declaration)
        self.settings = load_settings(self.profile, self.declaration, duration_s=duration_s)
        self.target, self.harness, self.faults = target, harness, faults
        self.workers, self.expect_workers = workers, expect_workers
        self.master_bind_host, self.master_port = master_bind_host, master_port
        self.scene_listen, self.public_scene_url = scene_listen, scene_url
        self.insecure = insecure
        self.gatekeeper_listen, self.gatekeeper_url = gatekeeper_listen, gatekeeper_url
        self.report_dir, self.signing_key, self.quiet = report_dir, signing_key, quiet
        self.tmp = Path(tempfile.mkdtemp(prefix="conformance-load-"))
        self.scene: subprocess.Popen[str] | None = None
        self.scene_url = ""
        self.scene_info: dict[str, Any] = {}
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(f"[conformance load] {text}", flush=True)

    # -- the scene ---------------------------------------------------------------------------
    def start_scene(self) -> None:
        settings_file = self.tmp / "settings.json"
        settings_file.write_text(json.dumps(self.settings), "utf-8")
        cmd = [sys.executable, "-m", "conformance.load.scene", "--settings", str(settings_file),
               "--listen", self.scene_listen, "--gatekeeper-listen", self.gatekeeper_listen]
        for opt, val in (("--target", self.target), ("--harness", self.harness),
                         ("--gatekeeper-url", self.gatekeeper_url)):
            if val:
                cmd += [opt, val]
        for f in self.faults:
            cmd += ["--fault", f]
        if self.insecure:
            cmd.append("--insecure")
        self._say("starting the scene: gatekeeper simulator"
                  + (f", provider at {self.target}" if self.target else
                     ", embedded reference provider" + (f" with faults {','.join(self.faults)}"
                                                        if self.faults else ""))
                  + ", enlisting users and uploading blobs")
        # A process group of its own: the embedded provider is the scene's child, and is
        # stopped with it even if the scene has to be killed (see close()).
        self.scene = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                      stderr=None if not self.quiet else subprocess.DEVNULL,
                                      start_new_session=True)
        try:
            line = first_line(self.scene, SCENE_START_S, "the load scene")
        except RuntimeError as exc:
            raise LoadError(str(exc)) from None
        try:
            info = json.loads(line)
        except ValueError:
            raise LoadError(f"the load scene did not start (exit {self.scene.poll()}): "
                            f"{line.strip()[:300] or 'no output'}") from None
        if "error" in info:
            raise LoadError(f"the load scene could not be set up: {info['error']}")
        self.scene_info = info
        self.scene_url = info["scene_url"]
        self._say(f"scene ready: provider {info['target']}, control {self.scene_url}")

    # -- Locust ------------------------------------------------------------------------------
    def _users(self) -> tuple[int, float]:
        s = self.settings
        users = sum(int(s[k]["users"]) for k in ("push", "media", "jwks", "conversation"))
        return users, max(users / max(float(s["ramp_s"]), 0.1), 1.0)

    def run_locust(self) -> float:
        users, rate = self._users()
        duration = float(self.settings["duration_s"])
        prefix = self.tmp / "locust"
        scene_for_workers = self.public_scene_url or self.scene_url
        common = ["--headless", "-u", str(users), "-r", f"{rate:g}", "-t", f"{duration:g}s",
                  "--host", self.scene_info["target"], "--scene-url", scene_for_workers,
                  "--csv", str(prefix), "--csv-full-history", "--html", str(self.tmp / "locust.html"),
                  "--stop-timeout", "5", "--exit-code-on-error", "0"]
        procs: list[subprocess.Popen[Any]] = []
        n_workers = self.workers or self.expect_workers
        out = subprocess.DEVNULL if self.quiet else None
        _scene_call(self.scene_url, "/mark?phase=start", "POST")
        t0 = time.monotonic()
        try:
            if n_workers:
                port = self.master_port or _free_port()
                master = subprocess.Popen(locust_command(
                    *common, "--master", "--master-bind-host", self.master_bind_host,
                    "--master-bind-port", str(port), "--expect-workers", str(n_workers),
                    "--expect-workers-max-wait", "120"), stdout=out, stderr=out)
                procs.append(master)
                self._say(f"Locust master on {self.master_bind_host}:{port}, "
                          f"waiting for {n_workers} worker(s)")
                if self.expect_workers:
                    self._say("join with: conformance load --worker --master-host <this host> "
                              f"--master-port {port}")
                for _ in range(self.workers):
                    procs.append(subprocess.Popen(locust_command(
                        "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)),
                        stdout=out, stderr=out))
                main = master
            else:
                main = subprocess.Popen(locust_command(*common), stdout=out, stderr=out)
                procs.append(main)
            self._say(f"{users} Locust users for {duration:g} s "
                      f"({self.settings['push']['users']} push, {self.settings['media']['users']} "
                      f"media, {self.settings['jwks']['users']} jwks, "
                      f"{self.settings['conversation']['users']} conversation)")
            try:
                main.wait(duration + LOCUST_GRACE_S + (120 if n_workers else 0))
            except subprocess.TimeoutExpired:
                raise LoadError(f"Locust did not finish within {duration + LOCUST_GRACE_S:g} s "
                                "of a planned run") from None
            for p in procs[1:]:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    pass
            if main.returncode not in (0, None):
                self._say(f"Locust exited with {main.returncode}")
        finally:
            for p in procs:
                stop_process(p)
            elapsed = time.monotonic() - t0
            try:
                _scene_call(self.scene_url, "/mark?phase=end", "POST")
            except OSError:
                pass
        return elapsed

    # -- verdicts and reports ----------------------------------------------------------------
    def finish(self, elapsed: float, error: str | None = None) -> tuple[RunResults, dict[str, Path]]:
        from conformance.reporting import prepare_report_dir, write_all

        by_id = {r.id: r for r in load_catalog()}
        reqs = [r for r in self.profile.requirements]
        levels = {r.id: r.level for r in reqs}
        observations: dict[str, Any] = {}
        stats: dict[str, Any] = {}
        history: list[dict[str, Any]] = []
        checks: list[CheckResult]
        if error is None and self.scene_url:
            wait = max(float(self.settings["thresholds"].get("wake_within_s", 15)),
                       float(self.settings["thresholds"].get("delivery_within_s", 15)))
            try:
                observations = _scene_call(self.scene_url, f"/observations?wait_s={wait:g}",
                                           timeout=wait * 3 + 60)
            except OSError as exc:
                error = f"the scene did not report its observations: {exc}"
        if error is None:
            stats, failures, history = read_locust_csv(self.tmp / "locust")
            if not stats:
                error = "Locust wrote no statistics (it did not run; see its output above)"
        if error is not None:
            checks = [CheckResult(f"load::{r.id}", (r.id,), Verdict.ERROR, elapsed, error)
                      for r in reqs]
        else:
            per_second = read_per_second(self.tmp / "locust")
            checks = judge(self.settings, Measured(stats, failures, history, observations, elapsed,
                                                   per_second=per_second), levels)
            checks = [c for c in checks if c.requirements[0] in by_id and c.requirements[0] in levels]
        target = self.target or ("embedded reference provider" + (
            f" with faults {','.join(self.faults)}" if self.faults else ""))
        results = LoadResults(
            kit_version=__version__, profile_name=self.profile.name,
            profile_version=self.profile.profile_version, profile_requirements=reqs,
            target=target, harness=self.harness or ("embedded" if not self.target else ""),
            vectors_version="n/a", declaration_digest=self.declaration.digest,
            insecure=self.insecure, started=self.started,
            finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            checks=checks)
        attachments: dict[str, bytes] = {}
        for src, name in (("locust_stats.csv", "load/locust_stats.csv"),
                          ("locust_stats_history.csv", "load/locust_stats_history.csv"),
                          ("locust_failures.csv", "load/locust_failures.csv"),
                          ("locust_exceptions.csv", "load/locust_exceptions.csv"),
                          ("locust_per_second.json", "load/locust_per_second.json"),
                          ("locust.html", "load/locust.html")):
            if (self.tmp / src).exists():
                attachments[name] = (self.tmp / src).read_bytes()
        attachments["load/observations.json"] = json.dumps(
            {"settings": self.settings, "observations": observations, "elapsed_s": elapsed},
            indent=1).encode()
        section = render_load_section(self.settings, stats, history, observations,
                                      self.workers or self.expect_workers) if stats else ""
        prepare_report_dir(self.report_dir, self.started)
        paths = write_all(results, self.report_dir, signing_key=self.signing_key,
                          attachments=attachments, extra_html=section)
        return results, paths

    def close(self) -> None:
        if self.scene is not None:
            try:
                _scene_call(self.scene_url, "/stop", "POST", timeout=10) if self.scene_url else None
                self.scene.wait(70)
            except (OSError, subprocess.TimeoutExpired):
                pass
            stop_process(self.scene)
            try:  # what the scene left behind (only when it did not stop cleanly)
                os.killpg(self.scene.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def summary_lines(results: RunResults) -> list[str]:
    report = results.to_report()
    lines = []
    for r in report["requirements"]:
        first = (r["message"] or "").splitlines()[:1]
        lines.append(f"  {r['verdict']:<14} {r['id']} {r['title']}" + (f": {first[0][:200]}" if first else ""))
    lines.append(f"profile {results.profile_name} {results.profile_version} -> {report['result']}")
    return lines


def run_load(run: LoadRun) -> tuple[RunResults, dict[str, Path]]:
    """Scene, Locust, verdicts, reports; the scene is always stopped."""
    elapsed, error = 0.0, None
    try:
        try:
            run.start_scene()
            elapsed = run.run_locust()
        except LoadError as exc:
            error = str(exc)
        return run.finish(elapsed, error)
    finally:
        run.close()


def worker_main(master_host: str, master_port: int) -> int:
    """``conformance load --worker``: one Locust worker joining a master (plan and scene URL
    come from the master)."""
    env = dict(os.environ)
    return subprocess.call(locust_command("--worker", "--master-host", master_host,
                                          "--master-port", str(master_port)), env=env)
