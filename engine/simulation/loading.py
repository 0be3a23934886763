"""Reading scenarios: TOML text or files, the built-in ones, and the policy a scenario names.

The only file I/O of the simulator is here: reading the scenario (and policy) file it
is given.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from ..policy import Policy, PolicyError, load_policy, parse_policy
from .scenario import Scenario, ScenarioError

__all__ = [
    "builtin_scenarios",
    "check_scenario_policy",
    "load_scenario",
    "parse_scenario",
    "scenario_policy",
]


def _decode_error(exc: msgspec.ValidationError) -> ScenarioError:
    return ScenarioError(str(exc).replace("$.", "").replace("`", ""))


def parse_scenario(data: bytes | str | dict[str, Any]) -> Scenario:
    """A scenario from TOML text or a dict; raises ``ScenarioError`` naming the key."""
    if isinstance(data, (bytes, str)):
        try:
            raw = tomllib.loads(data.decode() if isinstance(data, bytes) else data)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"not valid TOML: {exc}") from None
    else:
        raw = data
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise _decode_error(exc) from None


def builtin_scenarios() -> list[str]:
    """The names of the scenarios shipped with omniroute (``small``, ``telco``...)."""
    folder = resources.files(__package__).joinpath("scenarios")
    return sorted(
        p.name.removesuffix(".toml")
        for p in folder.iterdir()
        if p.name.endswith(".toml") and not p.name.endswith(".policy.toml")
    )


def _scenario_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or len(path.parts) > 1:
        return path
    builtin = resources.files(__package__).joinpath("scenarios", f"{name_or_path}.toml")
    if builtin.is_file():
        return Path(str(builtin))
    raise ScenarioError(
        f"no scenario {str(name_or_path)!r}: not a file, nor one of {builtin_scenarios()}"
    )


def load_scenario(name_or_path: str | Path) -> tuple[Scenario, Path]:
    """A built-in scenario by name, or a TOML file; returns it and its file's path."""
    path = _scenario_path(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    return parse_scenario(text), path


def scenario_policy(scenario: Scenario, base: Path | None = None) -> Policy:
    """The scenario's policy: its inline table, or the file it names (relative to
    ``base``, the scenario file's folder); ``Policy()`` when it names none."""
    try:
        if isinstance(scenario.policy, dict):
            return parse_policy(scenario.policy)
        if isinstance(scenario.policy, str):
            path = Path(scenario.policy)
            return load_policy(base / path if base is not None else path)
    except PolicyError as exc:
        raise ScenarioError(f"policy: {exc}") from None
    return Policy()


def check_scenario_policy(scenario: Scenario, policy: Policy) -> None:
    """Raise ``ScenarioError`` if a stream or agent group names what the policy lacks."""
    for t in scenario.traffic:
        queues = [t.queue, t.transfer_to, t.follow_up and t.follow_up.queue]
        queues.append(t.bot.handoff_queue if t.bot else None)
        queues.extend(switch.queue for switch in t.switches)
        for q in queues:
            if isinstance(q, str) and q not in policy.queues:
                raise ScenarioError(f"traffic {t.name!r}: the policy has no queue {q!r}")
    for g in scenario.agents:
        if g.profile is not None and g.profile not in policy.profiles:
            raise ScenarioError(f"agents {g.group!r}: the policy has no profile {g.profile!r}")
