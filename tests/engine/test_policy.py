"""Policies load from TOML with clear errors; defaults make a working contact centre."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniroute.engine import Engine, Policy, PolicyError, load_policy, parse_policy
from omniroute.engine.policy import CHANNEL_CLASS, PRESETS


def test_default_policy_is_a_working_contact_centre() -> None:
    policy = Policy()
    assert policy.scoring == PRESETS["balanced"]
    assert set(policy.queues) == {"default"}
    voice = policy.profiles["default"].classes["voice"]
    assert (voice.cost, voice.max) == (100, 1)
    Engine()  # no file needed


def test_every_channel_maps_to_a_media_class() -> None:
    assert CHANNEL_CLASS["webchat"] == "chat"
    assert {CHANNEL_CLASS[c] for c in ("whatsapp", "sms", "messenger", "telegram")} == {"messaging"}


def test_full_policy_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        """
preset = "longest_idle"

[profiles.default]
budget = 100
[profiles.default.classes.voice]
cost = 100
max = 1
[profiles.default.classes.email]
cost = 10
max = 10
interruptible_by = ["voice"]
[profiles.bot]
budget = 1000

[queues.billing]
skills = { billing = 2 }
offer_mode = "auto"
sla_s = { voice = 15, email = 7200 }
rings = [ { after_s = 30, level_drop = 1 }, { after_s = 90, widen = true } ]
"""
    )
    policy = load_policy(path)
    billing = policy.queues["billing"]
    assert billing.sla_for("voice") == 15 and billing.sla_for("webchat") == 30
    assert billing.rings[1].widen and policy.scoring == PRESETS["longest_idle"]
    assert policy.profiles["default"].classes["email"].interruptible_by == ("voice",)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[queues.billing]\nofer_mode = 'auto'\n", "ofer_mode"),
        ("[queues.billing]\noffer_timeout_s = 'soon'\n", "offer_timeout_s"),
        ("[queues.billing]\nskills = { billing = 9 }\n", "queues.billing.skills.billing"),
        ("preset = 'fastest'\n", "preset"),
        ("[queues.q]\nrings = [{ after_s = 60 }, { after_s = 30 }]\n", "queues.q.rings"),
        ("[profiles.default.classes.voice]\ncost = 100\nmax = 1\nbogus = 2\n", "bogus"),
        ("[queues.q]\nsla_s = { pigeon = 5 }\n", "pigeon"),
    ],
)
def test_a_typo_or_wrong_type_is_an_error_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert key in str(info.value)


def test_invalid_toml_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("preset = \n")
    with pytest.raises(PolicyError, match=r"broken\.toml: not valid TOML"):
        load_policy(path)
