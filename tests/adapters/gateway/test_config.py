"""The gateway's configuration: checked before anything runs, errors name the key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from omniroute.adapters.gateway import ConfigError, EmbeddedBackend, Gateway, load_config
from omniroute.adapters.gateway.config import parse_config
from omniroute.engine.policy import Policy


def test_the_example_configuration_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[3] / "examples" / "gateway.toml"
    config = load_config(example)
    assert {s.provider for s in config.source} >= {"whatsapp", "twilio", "email", "webchat"}
    assert config.route


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"gateway": {"tenant": "a b"}}, "gateway.tenant"),
        ({"gateway": {"port": 0}}, "gateway.port"),
        ({"gateway": {"typo": 1}}, "typo"),
        ({"source": [{"provider": "fax", "name": "x"}]}, "provider"),
        ({"source": [{"provider": "email", "name": "a"}, {"provider": "email", "name": "a"}]},
         "listed twice"),
        ({"agent": [{"agent_id": "ann"}]}, "token"),
        ({"source": [{"provider": "webchat", "name": "a", "maildir": "/tmp/m"}]}, "for email"),
        ({"source": [{"provider": "email", "name": "a", "secret": "x", "secret_env": "Y"}]},
         "not both"),
    ],
)  # fmt: skip
def test_a_bad_configuration_says_what_is_wrong(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config(data)


def test_a_signed_provider_needs_its_secret(tmp_path: Path) -> None:
    config = parse_config({"source": [{"provider": "whatsapp", "name": "main"}]})
    with pytest.raises(ConfigError, match="whatsapp signs its webhooks"):
        Gateway(config, EmbeddedBackend(tmp_path / "g.olog", Policy()))
    missing = parse_config(
        {"source": [{"provider": "twilio", "name": "t", "secret_env": "NOPE_X"}]}
    )
    with pytest.raises(ConfigError, match=r"\$NOPE_X is not set"):
        Gateway(missing, EmbeddedBackend(tmp_path / "g.olog", Policy()))


def test_logins_come_from_the_config_and_a_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "agents.tokens"
    digest = hashlib.sha256(b"bob-token").hexdigest()
    tokens.write_text(f"# agents\nbob sha256:{digest}\nbeta/carl carl-token\n")
    config = parse_config(
        {"gateway": {"tenant": "acme"}, "agent": [{"agent_id": "ann", "token": "ann-token"}],
         "desk": {"token_file": "agents.tokens"}},
        base=tmp_path,
    )  # fmt: skip
    logins = config.logins()
    assert logins[hashlib.sha256(b"ann-token").hexdigest()] == ("acme", "ann")
    assert logins[digest] == ("acme", "bob")
    assert logins[hashlib.sha256(b"carl-token").hexdigest()] == ("beta", "carl")
    assert config.tenants(logins) == ["acme", "beta"]
    tokens.write_text("bob\n")
    with pytest.raises(ConfigError, match=r"agents\.tokens:1"):
        config.logins()
