"""Policies load from TOML with clear errors; defaults make a working contact centre."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniroute.engine import Engine, Policy, PolicyError, load_policy, parse_policy
from omniroute.engine import events as ev
from omniroute.engine.policy import CHANNEL_CLASS, MAX_SECONDS, PRESETS, Queue, policy_toml

EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"


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


# --- the checks: targets, times, rings, choices -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[queues.q]\nsla_s = { voice = 0 }\n", "queues.q.sla_s.voice: must be more than 0"),
        ("[queues.q]\ndefault_sla_s = -5\n", "queues.q.default_sla_s: must be more than 0"),
        ("[queues.q]\nwrap_up_s = 1e12\n", "queues.q.wrap_up_s: must be 0 to 2592000 s (30 days)"),
        ("[queues.q]\naging_s = nan\n", "queues.q.aging_s: must be 0 to 2592000 s"),
        ("[queues.q]\nsticky_window_s = inf\n", "queues.q.sticky_window_s: must be 0 to"),
        ("[queues.q]\nrings = [{ after_s = 1e9 }]\n", "queues.q.rings[0].after_s: must be more"),
        (
            "[queues.q]\nrings = [{ after_s = 30, level_drop = 7 }]\n",
            "queues.q.rings[0].level_drop: must be 0..4 (skill levels are 1..5), got 7",
        ),
        ("[queues.q]\nrings = [{ after_s = 30, level_drop = -1 }]\n", "level_drop: must be 0..4"),
        ("[queues.q]\npriority = 10000000000\n", "queues.q.priority: must be -1,000,000 to"),
        ("[profiles.default.classes.voice]\ncost = 1\nmax = 3000000000\n", "voice.max: must be"),
        ("[profiles.default]\nbudget = 0\n", "profiles.default.budget: must be 1 to"),
        ("[weights]\nidle = inf\n", "weights.idle: must be a finite number"),
        ("dedup_window = -1\n", "dedup_window: must be 0 to"),
    ],
)
def test_a_value_out_of_range_is_an_error_naming_the_key_and_the_range(
    text: str, message: str
) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text + "[profiles.bot]\n" * ("[profiles." in text))
    assert message in str(info.value)


def test_durations_are_bounded_through_the_python_api_too() -> None:
    with pytest.raises(PolicyError, match=r"queues\.slow\.transfer_wait_s: must be 0 to"):
        Policy(queues={"slow": Queue(transfer_wait_s=1e12)})
    assert Policy(queues={"q": Queue(wrap_up_s=MAX_SECONDS, aging_s=0)}).queues["q"].aging_s == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[queues.q]\noffer_mode = 'manual'\n",
            "queues.q.offer_mode: 'manual' is not one of 'auto', 'offer'",
        ),
        ("unknown_queue = 'drop'\n", "unknown_queue: 'drop' is not one of 'default', 'reject'"),
        ("[queues.q]\nsla_s = { pigeon = 5 }\n", "queues.q.sla_s: 'pigeon' is not one of 'email',"),
        (
            "[profiles.default.classes.voice]\ncost = 1\nmax = 1\ninterruptible_by = ['fax']\n",
            "profiles.default.classes.voice.interruptible_by[0]: 'fax' is not one of 'chat',",
        ),
        (
            "[queues.q]\nofer_mode = 'auto'\n",
            "queues.q: unknown key 'ofer_mode' (did you mean 'offer_mode'?)",
        ),
        ("[weights]\nskil = 1\n", "weights: unknown key 'skil' (did you mean 'skill'?)"),
        (
            "[queues.q]\nrings = [{ after_s = 5, levl_drop = 1 }]\n",
            "queues.q.rings[0]: unknown key 'levl_drop'",
        ),
    ],
)
def test_a_wrong_choice_lists_the_allowed_values(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert message in str(info.value)


# --- warnings: valid, probably not meant ------------------------------------------------------


def test_a_class_whose_cost_times_max_exceeds_the_budget_is_a_warning_saying_how_many_fit() -> None:
    policy = parse_policy(
        "[profiles.default]\nbudget = 100\n"
        "classes.chat = { cost = 34, max = 3 }\nclasses.voice = { cost = 120, max = 1 }\n"
        "classes.email = { cost = 10, max = 10 }\n[profiles.bot]\n"
    )
    assert policy.warnings() == [
        "profiles.default.classes.chat: cost 34 x max 3 = 102 exceeds the budget 100, so an "
        "agent holds at most 2 chat conversation(s), not 3",
        "profiles.default.classes.voice: cost 120 x max 1 = 120 exceeds the budget 100, so an "
        "agent can never hold a voice conversation",
    ]
    assert Policy().warnings() == []


def test_the_example_policy_has_no_warnings_and_holds_three_chats() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    assert policy.warnings() == []
    chat = policy.profiles["default"].classes["chat"]
    assert policy.profiles["default"].budget // chat.cost >= chat.max == 3


# --- the default queue ------------------------------------------------------------------------


def test_defining_queues_keeps_the_default_queue_so_an_arrival_naming_none_is_routed() -> None:
    engine = Engine(load_policy(EXAMPLE_POLICY))
    assert {"sales", "default"} <= set(engine.policy.queues)
    engine.apply(ev.AgentRegistered(tenant="t", ts=0, agent_id="ann", skills={"billing": 3}))
    engine.apply(ev.AgentStatusChanged(tenant="t", ts=0, agent_id="ann", status="available"))
    decisions = engine.apply(
        ev.ConversationArrived(
            tenant="t", ts=1_000, conversation_id="c1", channel="whatsapp",
            contact=ev.Contact("whatsapp", "+33612345678"), skills={"billing": 2},
        )
    )  # fmt: skip
    assert [type(d) for d in decisions] == [ev.ConversationQueued, ev.ConversationOffered]
    assert parse_policy(policy_toml(engine.policy)) == engine.policy


def test_a_policy_may_require_every_arrival_to_name_its_queue() -> None:
    policy = parse_policy("default_queue = false\n[queues.sales]\n")
    assert set(policy.queues) == {"sales"}
    engine = Engine(policy)
    [rejected] = engine.apply(
        ev.ConversationArrived(tenant="t", ts=0, conversation_id="c1", channel="voice",
                               contact=ev.Contact("voice", "+1"))
    )  # fmt: skip
    assert isinstance(rejected, ev.EventRejected) and "queue 'default'" in rejected.reason
    with pytest.raises(PolicyError, match="unknown_queue = 'default' needs the default queue"):
        parse_policy("default_queue = false\nunknown_queue = 'default'\n[queues.sales]\n")
    own = parse_policy("[queues.default]\nskills = { general = 1 }\n")
    assert own.queues["default"].skills == {"general": 1}
