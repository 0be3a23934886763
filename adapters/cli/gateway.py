"""``omniroute gateway``: provider webhooks in, the agent desk API out.

::

    omniroute gateway --config FILE [--embedded LOG] [--host H] [--port N]

With ``--embedded LOG`` the gateway runs the engine itself over a local log file (no
NATS: a laptop); the policy is ``[gateway] policy``, else ``LOG.policy.toml`` when it
exists, else the default. Without it, it publishes to the service's
``<prefix>.<tenant>.in`` and follows ``.out`` (``[nats]``, ``[stream]``; the policy
must be the service's, for the follower's state to be the service's).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TextIO

from omniroute.engine.log import LogError
from omniroute.engine.policy import Policy, PolicyError, load_policy

from .common import Command, policy_sidecar, reported

__all__ = ["COMMANDS"]

_log = logging.getLogger(__name__)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML file")
    parser.add_argument(
        "--embedded", type=Path, metavar="LOG",
        help="run the engine in this process over this log file (no NATS)",
    )  # fmt: skip
    parser.add_argument("--host", metavar="H", help="override [gateway] host")
    parser.add_argument("--port", type=int, metavar="N", help="override [gateway] port")


def _policy(config_policy: str | None, embedded: Path | None) -> Policy:
    if config_policy:
        return load_policy(config_policy)
    if embedded is not None and policy_sidecar(embedded).exists():
        return load_policy(policy_sidecar(embedded))
    return Policy()


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from ..gateway.config import ConfigError, load_config
    from ..gateway.server import make_gateway, run

    del out
    with reported(OSError, ConfigError, PolicyError):
        config = load_config(args.config)
        gw = make_gateway(config, _policy(config.gateway.policy, args.embedded), args.embedded)
    opts = config.gateway
    where = f"embedded log {args.embedded}" if args.embedded else (
        f"NATS {', '.join(config.nats.servers)}, stream {config.stream.name}"
    )  # fmt: skip
    _log.info(
        "gateway: http://%s:%d (%d sources, %d agent logins) on %s; SIGTERM or Ctrl-C stops it",
        args.host or opts.host, args.port or opts.port, len(config.source), len(gw.logins), where,
    )  # fmt: skip
    with reported(LogError, OSError):
        code = run(gw, args.host, args.port, lambda: _log.info("gateway: ready"))
    _log.info("gateway: stopped (exit %d)", code)
    return code


COMMANDS: dict[str, Command] = {
    "gateway": Command(
        help="receive provider webhooks and serve the agent desk API",
        description="Serve POST /webhooks/<provider>/<name> (WhatsApp, Messenger, Instagram, "
        "Facebook, Telegram, Twilio, email, webchat, X), the agent desk API and event streams "
        "(/desk/...), /health and /metrics.",
        add_arguments=_arguments,
        run=_run,
        extra="gateway",
    ),
}
"""The commands of this module, for ``main``'s table."""
