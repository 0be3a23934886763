"""The wallboard application over a projected log: the page is complete without JS,
filters narrow the page, its stream and ``/state.json``; nothing comes from elsewhere;
nothing is written."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from omniroute.adapters.reporting.live import LiveState
from omniroute.adapters.wallboard import DatabaseSource, Filters, create_app
from omniroute.adapters.wallboard.page import page
from tests.support.projection import POLICY


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def client(morning_db: Path) -> Iterator[TestClient]:
    with TestClient(create_app(DatabaseSource(morning_db, POLICY), every_s=0.2)) as c:
        yield c


def _waiting(html: str, key: str) -> int:
    """The waiting count of the queue row ``tenant/queue/channel`` on the page."""
    row = re.search(rf'<tr[^>]*data-queue="{re.escape(key)}".*?</tr>', html, re.S)
    assert row is not None, f"no row {key}"
    cell = re.search(r'data-field="waiting">(\d+)<', row.group(0))
    assert cell is not None
    return int(cell.group(1))


def _queue_keys(html: str) -> set[str]:
    return set(re.findall(r'data-queue="([^"]+)"', html))


def test_the_page_is_complete_without_js(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert _queue_keys(html) == {"acme/sales/voice", "acme/sales/webchat", "beta/default/voice"}
    assert _waiting(html, "acme/sales/voice") == 2  # c2 and c3, behind ann's chat
    assert _waiting(html, "beta/default/voice") == 1
    assert re.search(r'<tr class="row-breach" data-queue="acme/sales/voice"', html)
    assert 'data-agent="acme/ann"' in html and ">Ann<" in html
    assert re.search(r'data-agent="acme/bob" data-status="away"', html)
    assert "<svg" in html and 'class="line"' in html  # today's service level, drawn
    assert "c2" in html and "b1" in html  # the recent breaches
    assert 'data-events="events"' in html


def test_everything_is_served_from_here(client: TestClient) -> None:
    html = client.get("/").text
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    refs = re.findall(r'(?:src|href)="(static/[^"]+)"', html)
    assert sorted(refs) == ["static/wallboard.css", "static/wallboard.js"]
    for ref in refs:
        response = client.get(f"/{ref}")
        assert response.status_code == 200
        assert "//cdn" not in response.text and "http" not in response.text
    assert "EventSource" in client.get("/static/wallboard.js").text


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("tenant=beta", {"beta/default/voice"}),
        ("channel=voice", {"acme/sales/voice", "beta/default/voice"}),
        ("queue=sales&channel=webchat", {"acme/sales/webchat"}),
        ("tenant=nobody", set()),
    ],
)
def test_filters_narrow_the_page_and_the_state(
    client: TestClient, query: str, keys: set[str]
) -> None:
    html = client.get(f"/?{query}").text
    assert _queue_keys(html) == keys
    assert f'data-events="events?{query.replace("&", "&amp;")}"' in html
    for name, value in (part.split("=") for part in query.split("&")):
        assert f'<option value="{value}" selected>' in html  # the menus show the filters
        assert f'<select name="{name}"' in html
    state = client.get(f"/state.json?{query}").json()
    assert {f"{q['tenant']}/{q['queue']}/{q['channel']}" for q in state["queues"]} == keys


def test_a_tenant_filter_narrows_the_agents(client: TestClient) -> None:
    assert "data-agent=" not in client.get("/?tenant=beta").text  # beta has none
    assert 'data-agent="acme/ann"' in client.get("/?tenant=acme").text


def test_the_menus_list_what_there_is_to_filter(client: TestClient) -> None:
    html = client.get("/?tenant=beta").text
    tenants = re.search(r'<select name="tenant".*?</select>', html, re.S)
    assert tenants is not None
    assert re.findall(r'<option value="([^"]*)"', tenants.group(0)) == ["", "acme", "beta"]


def test_state_json_is_the_live_state(client: TestClient) -> None:
    state = client.get("/state.json").json()
    assert set(state) >= {"as_of", "queues", "agents", "breaches", "levels"}
    voice = next(q for q in state["queues"] if (q["tenant"], q["channel"]) == ("acme", "voice"))
    assert voice["waiting"] == 2 and voice["sla_state"] == "breach"
    assert {a["agent_id"]: a["status"] for a in state["agents"]} == {
        "ann": "available",
        "bob": "away",
    }


def test_health(client: TestClient, morning_db: Path) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["as_of"].startswith("2026-01-01T08:01")
    assert str(morning_db) in body["source"]


class _Broken:
    def read(self, tenant: str | None = None, queue: str | None = None,
             channel: str | None = None) -> LiveState:  # fmt: skip
        raise OSError("the disk is gone")


def test_health_degraded_when_the_source_cannot_be_read() -> None:
    with TestClient(create_app(_Broken())) as c:
        response = c.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "degraded"
        assert "the disk is gone" in response.json()["error"]
        page = c.get("/")
        assert page.status_code == 503 and "the disk is gone" in page.text


def test_nothing_is_written(morning_db: Path) -> None:
    before = {p: _digest(p) for p in morning_db.parent.iterdir()}
    with TestClient(create_app(DatabaseSource(morning_db, POLICY), every_s=0.2)) as c:
        for url in ("/", "/?tenant=acme", "/state.json", "/health"):
            assert c.get(url).status_code == 200
    assert {p: _digest(p) for p in morning_db.parent.iterdir()} == before


def test_every_value_is_escaped(morning_db: Path) -> None:
    state = DatabaseSource(morning_db, POLICY).read()
    evil = "<script>alert(1)</script>"
    state = dataclasses.replace(
        state,
        queues=tuple(dataclasses.replace(q, queue=evil) for q in state.queues),
        agents=tuple(dataclasses.replace(a, name=evil) for a in state.agents),
    )
    html = page(state, Filters(queue=evil))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_application_starts_again(morning_db: Path) -> None:
    app = create_app(DatabaseSource(morning_db, POLICY), every_s=0.2)
    for _ in range(2):  # (each start has an event loop of its own)
        with TestClient(app) as c:
            assert c.get("/health").json()["status"] == "ok"
            assert not app.state.stop.is_set()
        assert app.state.stop.is_set()
