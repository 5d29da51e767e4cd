"""The reference provider: a complete, conformant provider server, client and harness, with
named, switchable faults that show the suite catches real bugs.

``ReferenceProvider`` runs it in-process (the suite embeds it); ``conformance
serve-reference`` runs it as a command. Modules: ``config`` (settings), ``faults`` (the
registry), ``tokens`` (JWKS, user JWTs, push verification), ``storage`` (SQLite and blobs),
``server`` (JWKS, push, media, health), ``client`` (one client per user), ``harness`` (the
harness API, on top of the app), ``app`` (the provider without sockets), ``process``
(binds and serves), ``cli`` (the command).
"""
from __future__ import annotations

from .app import ProviderApp
from .config import GatekeeperSettings, ProviderConfig
from .faults import FAULTS, Fault, Faults
from .process import ReferenceProvider

__all__ = ["ReferenceProvider", "ProviderApp", "ProviderConfig", "GatekeeperSettings", "FAULTS",
           "Fault", "Faults"]
