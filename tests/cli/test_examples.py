"""The first hour: the examples a newcomer runs (events, policy, service configuration),
the README's event examples, and ``omniroute schema``, checked against the real thing."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest

from omniroute.adapters.cli import main
from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.config import load_config
from omniroute.engine import Engine, load_policy
from omniroute.engine import events as ev
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    log_events,
    service_config,
    subject_messages,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
INPUT_TYPES = typing.get_args(ev.Input)


def example_events() -> list[ev.Event]:
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    return [ev.decode_json(line) for line in lines]


def test_the_example_events_are_every_input_type_and_the_example_policy_routes_them() -> None:
    events = example_events()
    assert not any(ev.is_decision(e) for e in events)
    assert {type(e) for e in events} == set(INPUT_TYPES)
    engine = Engine(load_policy(EXAMPLES / "policy.toml"))
    decisions = [d for e in events for d in engine.apply(e)]
    assert not [d for d in decisions if isinstance(d, ev.EventRejected)]
    assigned = [d.agent_id for d in decisions if isinstance(d, ev.ConversationAssigned)]
    assert assigned[:3] == ["bob", "ann", "helpbot"]


def test_the_example_service_configuration_loads_with_the_example_policy() -> None:
    config = load_config(EXAMPLES / "service.toml")
    assert config.service.policy == str(EXAMPLES / "policy.toml")
    assert {e.tenant for e in example_events()} <= set(config.service.tenants)
    assert config.nats.servers == ("nats://127.0.0.1:4222",)


def test_send_publishes_the_example_events_and_the_service_routes_them_all(
    nats_server: LocalNatsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = StreamOptions(name=unique("S"), prefix=unique("p"))
    text = (EXAMPLES / "service.toml").read_text()
    text = text.replace('servers = ["nats://127.0.0.1:4222"]', f'servers = ["{nats_server.url}"]')
    text = re.sub(r'(?m)^name = "OMNIROUTE"', f'name = "{stream.name}"', text)
    text = re.sub(r'(?m)^prefix = "omniroute"', f'prefix = "{stream.prefix}"', text)
    text = re.sub(r"(?m)^\[metrics\]\n(.*\n)*", "", text)
    config = tmp_path / "service.toml"
    config.write_text(text)
    svc = InProcessService(service_config(text, EXAMPLES))
    events = example_events()
    try:
        assert main(["send", str(EXAMPLES / "events.jsonl"), "--config", str(config)]) == 0
        assert f"sent {len(events)} events" in capsys.readouterr().out
        options = options_for(nats_server)

        def inputs() -> list[ev.Event]:
            return [e for e in log_events(options, stream, "acme") if not ev.is_decision(e)]

        wait_for(lambda: len(inputs()) == len(events), 30, "the service to log every input")
    finally:
        assert svc.stop() == 0
    log = log_events(options, stream, "acme")
    assert [e for e in log if not ev.is_decision(e)] == events
    assert not [e for e in log if isinstance(e, ev.EventRejected)]
    assert subject_messages(options, stream, f"{stream.prefix}.acme.rejected") == []


def test_the_readme_shows_one_example_of_each_input_taken_from_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Events\n", 1)[1].split("\n## ", 1)[0]
    shown = section.split("```json\n", 1)[1].split("```", 1)[0].splitlines()
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    first = {}
    for line in lines:
        first.setdefault(json.loads(line)["type"], line)
    assert shown == list(first.values())
    assert {type(ev.decode_json(line)) for line in shown} == set(INPUT_TYPES)


# --- omniroute schema -------------------------------------------------------------------------


def test_schema_is_a_json_schema_of_every_input_with_its_required_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    defs = schema["$defs"]
    tags = {defs[r["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["enum"][0]
            for r in schema["anyOf"]}  # fmt: skip
    assert tags == {ev.TAGS[t] for t in INPUT_TYPES}
    arrived = defs["ConversationArrived"]
    assert set(arrived["required"]) == {"type", "tenant", "ts", "conversation_id", "channel",
                                        "contact"}  # fmt: skip
    assert arrived["properties"]["contact"] == {"$ref": "#/$defs/Contact"}
    assert defs["Contact"]["required"] == ["channel", "address"]
    assert main(["schema", "--decisions"]) == 0
    assert "ConversationOffered" in json.loads(capsys.readouterr().out)["$defs"]


def test_schema_as_markdown_has_a_table_per_event_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    for cls in INPUT_TYPES:
        assert f"## `{ev.TAGS[cls]}` ({cls.__name__})" in out
    table = out.split("## `conversation.arrived`", 1)[1].split("\n## ", 1)[0]
    assert "| `contact` | Contact | required |" in table
    assert '| `queue` | string | "default" |' in table
    assert "## Contact (nested)" in out and "conversation.offered" not in out
