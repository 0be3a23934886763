"""The gateway's configuration file (TOML), checked before anything runs.

::

    [gateway]
    tenant = "acme"            # the tenant of sources and agents that name none
    region = "GB"              # reads national phone numbers (E.164 otherwise)
    public_url = "https://cc.example.com"   # the URL providers call (Twilio signs it)
    policy = "policy.toml"     # the engine policy (embedded log; a NATS follower)

    [[source]]                 # one per webhook: POST /webhooks/<provider>/<name>
    provider = "whatsapp"      # whatsapp messenger instagram facebook telegram twilio
    name = "main"              #   email webchat x
    secret_env = "WA_APP_SECRET"   # or secret = "..." (app secret, bot secret token,
    verify_token = "..."           #   auth token, relay token, identity secret)

    [[route]]                  # the routing table: the first match sets queue and skills
    channel = "whatsapp"
    keywords = ["refund", "invoice"]
    queue = "billing"
    skills = { billing = 2 }

    [[agent]]                  # desk API logins (also: [desk] token_file)
    agent_id = "ann"
    token_sha256 = "..."       # or token = "..."

``[nats]`` and ``[stream]`` are those of ``omniroute serve`` (production: the gateway
publishes to ``<prefix>.<tenant>.in`` and follows ``.out``). A secret is given inline or
by the name of an environment variable, never both.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from omniroute.engine.events import AgentKind, Skills

from ..nats.options import NatsOptions, StreamOptions, valid_tenant

__all__ = [
    "PROVIDERS",
    "SIGNED",
    "AgentLogin",
    "ConfigError",
    "DeskOptions",
    "GatewayConfig",
    "GatewayOptions",
    "RouteRule",
    "Source",
    "load_config",
    "parse_config",
]

Provider = Literal[
    "whatsapp", "messenger", "instagram", "facebook", "telegram", "twilio", "email",
    "webchat", "x",
]  # fmt: skip
PROVIDERS: tuple[str, ...] = Provider.__args__  # type: ignore[attr-defined]
SIGNED = frozenset({"whatsapp", "messenger", "instagram", "facebook", "telegram", "twilio", "x"})
"""Providers that sign their webhooks: a source of theirs needs a secret."""


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key."""


class GatewayOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[gateway]``: where it listens and how it reads what arrives."""

    tenant: str = "default"
    region: str | None = None
    public_url: str | None = None
    """The scheme and host providers call (behind a proxy the request's own URL is not
    what Twilio signed); None: the request's URL."""
    host: str = "127.0.0.1"
    port: int = 8080
    policy: str | None = None
    max_body_bytes: int = 1024 * 1024
    """Larger requests are refused (413) unread."""
    rate_per_s: float = 200.0
    """Requests per second per client address (a token bucket); 0: no limit."""
    rate_burst: int = 400
    tick_s: float = 1.0
    """Embedded log: how often a due timer is looked for (a ``Tick`` is appended only
    when one is due)."""
    sse_history: int = 10_000
    """Desk events kept per tenant for ``Last-Event-ID`` resume."""
    drain_s: float = 5.0

    def __post_init__(self) -> None:
        if not valid_tenant(self.tenant):
            raise ValueError(f"gateway.tenant {self.tenant!r}: use 1-64 of A-Z a-z 0-9 _ -")
        if not 0 < self.port < 65536:
            raise ValueError(f"gateway.port must be 1-65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"gateway.max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.rate_per_s < 0 or self.rate_burst < 1:
            raise ValueError("gateway.rate_per_s must be >= 0 and rate_burst >= 1")
        if self.tick_s <= 0 or self.sse_history < 1:
            raise ValueError("gateway.tick_s must be > 0 and sse_history >= 1")


class Source(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[source]]``: one provider account whose webhooks arrive at
    ``/webhooks/<provider>/<name>``."""

    provider: Provider
    name: str
    tenant: str | None = None
    secret: str | None = None
    secret_env: str | None = None
    verify_token: str | None = None
    """Meta's GET ``hub.verify_token`` handshake."""
    bot: str | None = None
    """Telegram: the bot's name (the recipient of its messages); default ``name``."""
    language: str | None = None
    """The language of what arrives here (a French number), for the routing table."""
    require_identity: bool = False
    """Webchat: refuse visitors without a valid identity hash."""
    maildir: str | None = None
    """Email: also read the messages delivered to this Maildir (``new`` -> ``cur``)."""
    mbox: str | None = None
    """Email: also import this mbox file's messages at start (idempotent)."""

    def __post_init__(self) -> None:
        if not valid_tenant(self.name):
            raise ValueError(f"source.name {self.name!r}: use 1-64 of A-Z a-z 0-9 _ -")
        if self.tenant is not None and not valid_tenant(self.tenant):
            raise ValueError(f"source.tenant {self.tenant!r}: use 1-64 of A-Z a-z 0-9 _ -")
        if (self.maildir or self.mbox) and self.provider != "email":
            raise ValueError(f"source {self.provider}/{self.name}: maildir/mbox are for email")
        if self.secret is not None and self.secret_env is not None:
            raise ValueError(f"source {self.provider}/{self.name}: secret or secret_env, not both")

    def secret_bytes(self, environ: Mapping[str, str] | None = None) -> bytes | None:
        """The secret, read from the environment when named there."""
        if self.secret_env is not None:
            env = os.environ if environ is None else environ
            value = env.get(self.secret_env)
            if not value:
                raise ConfigError(
                    f"source {self.provider}/{self.name}: ${self.secret_env} is not set"
                )
            return value.encode()
        return self.secret.encode() if self.secret is not None else None


class RouteRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[route]]``: what a new conversation that matches every given key gets."""

    channel: str | None = None
    provider: str | None = None
    source: str | None = None
    recipient: str | None = None
    """Our number, page, bot, address or site the customer wrote to."""
    keywords: tuple[str, ...] = ()
    """Any of these words in the first message (case-insensitive)."""
    language: str | None = None
    queue: str = "default"
    skills: Skills = {}
    optional_skills: Skills = {}
    priority: int = 0
    set_language: str | None = None
    """The conversation's language (default: the source's, when it has one)."""


class AgentLogin(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[agent]]``: an agent or bot that may use the desk API, and its bearer token.

    With ``register = true`` the gateway registers the agent (its ``kind``, ``skills``,
    ``capacity_profile``, ``languages``) when it starts and the engine does not know it
    yet; otherwise a workforce system registers agents (``AgentRegistered``)."""

    agent_id: str
    tenant: str | None = None
    token: str | None = None
    token_sha256: str | None = None
    register: bool = False
    kind: AgentKind = "human"
    skills: Skills = {}
    capacity_profile: str | None = None
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(f"agent {self.agent_id!r}: give token or token_sha256 (one)")

    @property
    def digest(self) -> str:
        if self.token_sha256 is not None:
            return self.token_sha256.lower()
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).hexdigest()


class DeskOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[desk]``: ``token_file`` holds more logins, one per line:
    ``agent_id token`` or ``agent_id sha256:HEX`` (``tenant/agent_id`` for another tenant)."""

    token_file: str | None = None
    heartbeat_s: float = 15.0


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gateway: GatewayOptions = GatewayOptions()
    nats: NatsOptions = NatsOptions()
    stream: StreamOptions = StreamOptions()
    source: tuple[Source, ...] = ()
    route: tuple[RouteRule, ...] = ()
    agent: tuple[AgentLogin, ...] = ()
    desk: DeskOptions = DeskOptions()

    def __post_init__(self) -> None:
        seen = set()
        for src in self.source:
            key = (src.provider, src.name)
            if key in seen:
                raise ValueError(f"source {src.provider}/{src.name} is listed twice")
            seen.add(key)

    def tenant_of(self, source: Source) -> str:
        return source.tenant or self.gateway.tenant

    def tenants(self, logins: Mapping[str, tuple[str, str]]) -> list[str]:
        """Every tenant a source or an agent login names (the gateway's own first)."""
        names = [self.gateway.tenant, *map(self.tenant_of, self.source)]
        names += [tenant for tenant, _ in logins.values()]
        return list(dict.fromkeys(names))

    def logins(self) -> dict[str, tuple[str, str]]:
        """Token digest -> (tenant, agent id), from ``[[agent]]`` and the token file."""
        found = {a.digest: (a.tenant or self.gateway.tenant, a.agent_id) for a in self.agent}
        if self.desk.token_file is not None:
            path = Path(self.desk.token_file)
            for number, line in enumerate(path.read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise ConfigError(f"{path}:{number}: expected 'agent_id token'")
                who, token = parts
                tenant, _, agent = who.rpartition("/")
                digest = (
                    token.removeprefix("sha256:").lower()
                    if token.startswith("sha256:")
                    else hashlib.sha256(token.encode()).hexdigest()
                )
                found[digest] = (tenant or self.gateway.tenant, agent)
        return found


def _resolve(base: Path, value: str | None) -> str | None:
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_config(data: Mapping[str, object], base: Path | None = None) -> GatewayConfig:
    """A configuration from parsed TOML, paths relative to ``base``; ``ConfigError`` if bad."""
    try:
        config = msgspec.convert(data, GatewayConfig)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"configuration: {exc}") from exc
    base = base or Path.cwd()
    sources = tuple(
        msgspec.structs.replace(s, maildir=_resolve(base, s.maildir), mbox=_resolve(base, s.mbox))
        for s in config.source
    )
    return msgspec.structs.replace(
        config,
        source=sources,
        nats=config.nats.with_env(),
        gateway=msgspec.structs.replace(
            config.gateway, policy=_resolve(base, config.gateway.policy)
        ),
        desk=msgspec.structs.replace(
            config.desk, token_file=_resolve(base, config.desk.token_file)
        ),
    )


def load_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read a configuration file; ``ConfigError`` (or ``OSError``)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    try:
        return parse_config(data, p.parent.resolve())
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
