"""``conformance load --duration`` / ``--run-time``: seconds or Locust's run-time form."""
from __future__ import annotations

import argparse

import pytest

from conformance.load.cli import add_arguments, timespan


@pytest.mark.parametrize("text, seconds", [("600", 600), ("12.5", 12.5), ("90s", 90),
                                           ("10m", 600), ("1h30m", 5400), ("2m30s", 150)])
def test_durations_in_seconds_or_locust_form(text: str, seconds: float) -> None:
    assert timespan(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "0", "-5", "0s"])
def test_a_bad_duration_is_refused_by_name(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="duration|more than 0"):
        timespan(text)


def test_run_time_is_the_same_option_as_duration() -> None:
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    assert ap.parse_args(["--run-time", "10m"]).duration == 600
    assert ap.parse_args(["--duration", "20"]).duration == 20
    assert ap.parse_args([]).duration is None
