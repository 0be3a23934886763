"""What every ``omniroute`` command shares: the command shape, exit codes, errors, policies.

A command group module (``simulate``, ``replay``, ``service``, ``report``) exposes
``COMMANDS: dict[str, Command]``; ``main`` builds the parser from those tables and
dispatches through them. A command reports a problem by raising :class:`CliError` (or an
error named in :func:`reported`): ``omniroute: error: MESSAGE`` on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TextIO

import msgspec

from omniroute.engine.log import LogError
from omniroute.engine.policy import PRESETS, Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from ..nats.log import NatsLog

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXTRAS",
    "CliError",
    "Command",
    "LogPolicy",
    "fresh_outputs",
    "missing_extra",
    "open_tenant_logs",
    "policy_of_log",
    "policy_or_preset",
    "policy_sidecar",
    "print_error",
    "reported",
]

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""The command ran and found a failure: a replay mismatch, the service stopped with an
error, a published message was not acknowledged."""
EXIT_ERROR = 2
"""The command could not run: bad usage, a bad policy or configuration, a log or database
that cannot be read, no connection, a missing install extra."""

EXTRAS: dict[str, tuple[str, ...]] = {
    "reporting": ("duckdb", "matplotlib", "tqdm"),
    "service": ("nats", "prometheus_client"),
    "gateway": ("starlette", "uvicorn", "phonenumbers", "prometheus_client", "nats"),
    "wallboard": ("duckdb", "starlette", "uvicorn"),
}
"""The install extras (``pip install 'omniroute[EXTRA]'``) and the modules each brings."""


@dataclass(frozen=True)
class Command:
    """One ``omniroute`` subcommand: its help, its arguments and what runs it."""

    help: str
    """One line in ``omniroute --help``."""
    description: str
    """The text of ``omniroute COMMAND --help``."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, TextIO], int]
    """Runs the parsed command, printing its output to the stream; the exit status."""
    extra: str | None = None
    """The install extra (a key of :data:`EXTRAS`) the command needs, if any."""


class CliError(Exception):
    """The command cannot go on; its message is printed as ``omniroute: error: ...``."""


def print_error(message: str) -> int:
    """Print ``omniroute: error: MESSAGE`` on stderr; :data:`EXIT_ERROR`."""
    print(f"omniroute: error: {message}", file=sys.stderr)
    return EXIT_ERROR


@contextlib.contextmanager
def reported(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` raised inside into a :class:`CliError` with their message (also
    usable as a decorator)."""
    try:
        yield
    except errors as exc:
        raise CliError(str(exc)) from exc


def missing_extra(extra: str) -> list[str]:
    """The modules of install extra ``extra`` that cannot be imported (none: it is there)."""
    return [module for module in EXTRAS[extra] if importlib.util.find_spec(module) is None]


# --- policies ---------------------------------------------------------------------------------


def policy_sidecar(log_path: Path) -> Path:
    """Where ``simulate``/``demo`` save the policy a log was decided with: ``LOG.policy.toml``."""
    return log_path.with_name(log_path.name + ".policy.toml")


class LogPolicy(NamedTuple):
    """The policy a log was decided with, and where it came from."""

    policy: Policy
    path: Path | None
    """The file it was read from; None for the built-in default policy."""
    source: str
    """Where it came from, in words."""


@reported(OSError, PolicyError)
def policy_of_log(log_path: Path, given: Path | None) -> LogPolicy:
    """``--policy FILE`` if given, else ``LOG.policy.toml`` if it exists, else the default."""
    if given is not None:
        return LogPolicy(load_policy(given), given, str(given))
    sidecar = policy_sidecar(log_path)
    if sidecar.exists():
        return LogPolicy(load_policy(sidecar), sidecar, f"{sidecar} (found next to the log)")
    return LogPolicy(Policy(), None, "the default policy")


def policy_or_preset(spec: str, base: Policy) -> Policy:
    """The policy named by ``spec``: a TOML file (its warnings printed on stderr), or a
    scoring preset applied to ``base``."""
    if spec in PRESETS and not Path(spec).exists():
        return msgspec.structs.replace(base, preset=spec, weights=None)
    policy = load_policy(spec)
    for warning in policy.warnings():
        print(f"omniroute: warning: {spec}: {warning}", file=sys.stderr)
    return policy


def fresh_outputs(paths: Sequence[Path], force: bool) -> None:
    """Make room for a command's output files: an existing one is an error unless ``force``
    (then it is removed)."""
    for path in paths:
        if path.exists():
            if not force:
                raise CliError(f"{path} exists; pass --force to overwrite it")
            path.unlink()


def open_tenant_logs(
    config_path: Path,
    tenants: Sequence[str] | None,
    policy_path: Path | None,
    stack: contextlib.ExitStack,
) -> tuple[Policy, dict[str, NatsLog]]:
    """A running service's policy (``policy_path`` if given) and a read-only NATS log of
    each tenant (``tenants``, else the configuration's), closed with ``stack``."""
    from ..nats.log import NatsLog
    from ..nats.options import valid_tenant
    from ..service.config import ConfigError, load_config

    with reported(OSError, ConfigError, PolicyError):
        config = load_config(config_path)
        given = policy_path if policy_path is not None else config.service.policy
        policy = load_policy(given) if given else Policy()
    names = tuple(dict.fromkeys(tenants or config.service.named_tenants))
    if not names:
        raise CliError(f"{config_path}: no tenants ([service] tenants, or --tenant T)")
    for tenant in names:
        if not valid_tenant(tenant):
            raise CliError(f"tenant {tenant!r}: use 1-64 of A-Z a-z 0-9 _ -")
    logs: dict[str, NatsLog] = {}
    with reported(OSError, LogError):
        for tenant in names:
            logs[tenant] = stack.enter_context(
                NatsLog(config.nats, tenant, config.stream, readonly=True)
            )
    return policy, logs
