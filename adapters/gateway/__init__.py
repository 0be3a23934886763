"""The channel gateway: provider webhooks in, the agent desk API and its event streams out.

``omniroute gateway --config FILE`` (:mod:`.server`) serves :func:`.app.build_app`:
webhooks (:mod:`.webhooks`) read by the pure normalisers of
:mod:`omniroute.adapters.channels` and turned into engine inputs (:mod:`.intake`,
queue and skills from :mod:`.routing`), the desk API (:mod:`.desk`), ``/health`` and
``/metrics``. Inputs go to a :class:`.backend.Backend`: an engine and a ``FileLog`` in
this process (:mod:`.embedded`) or NATS JetStream in production (:mod:`.jetstream`).
"""

from .app import build_app
from .backend import Backend
from .config import ConfigError, GatewayConfig, load_config, parse_config
from .embedded import EmbeddedBackend
from .gateway import Gateway
from .jetstream import JetStreamBackend
from .server import make_gateway, run

__all__ = [
    "Backend",
    "ConfigError",
    "EmbeddedBackend",
    "Gateway",
    "GatewayConfig",
    "JetStreamBackend",
    "build_app",
    "load_config",
    "make_gateway",
    "parse_config",
    "run",
]
