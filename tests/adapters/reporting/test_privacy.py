"""Contact addresses stored as a keyed hash: no address reaches the database, the same
customers and conversations join as with plain addresses, the key is fixed per database,
a key holder finds a customer by address, and the export says how addresses are stored."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters import cli
from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import AddressHasher, ProjectionError, Projector
from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.events import Contact

KEY = b"a secret of at least sixteen bytes"
PHONE, MAIL, WA = "+33612345678", "ann@example.com", "FR.wa-777"


def _events() -> list[ev.Event]:
    """One customer on voice, then SMS from the same number, then email (linked)."""
    t = "acme"
    return [
        ev.AgentRegistered(tenant=t, ts=0, agent_id="bob", skills={"billing": 3}),
        ev.AgentStatusChanged(tenant=t, ts=0, agent_id="bob", status="available"),
        ev.ConversationArrived(tenant=t, ts=1_000, conversation_id="c1", channel="voice",
                               contact=Contact("voice", PHONE), skills={"billing": 1}),
        ev.ContactsLinked(tenant=t, ts=2_000, customer_id="crm-1",
                          contacts=[Contact("voice", PHONE), Contact("email", MAIL)]),
        ev.ConversationArrived(tenant=t, ts=3_000, conversation_id="c2", channel="email",
                               contact=Contact("email", MAIL), skills={"billing": 1}),
        ev.ConversationArrived(tenant=t, ts=4_000, conversation_id="c3", channel="sms",
                               contact=Contact("sms", "+33699999999"), skills={"billing": 1}),
        # as the gateway links a WhatsApp id to a number: under the number's anonymous id
        ev.ContactsLinked(tenant=t, ts=5_000, customer_id="contact:sms:+33699999999",
                          contacts=[Contact("sms", "+33699999999"), Contact("whatsapp", WA)]),
    ]  # fmt: skip


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path, engine = tmp_path / "day.olog", Engine()
    with FileLog(path) as log:
        for event in _events():
            log.append([event, *engine.apply(event)])
    return path


def _dump(db: Path) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        tables = ("interactions", "legs", "customers", "contacts")
        return repr([con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables])


def test_no_address_reaches_a_hashed_database_and_everything_joins_the_same(
    tmp_path: Path, log_path: Path
) -> None:
    plain, hashed = tmp_path / "plain.duckdb", tmp_path / "hashed.duckdb"
    with FileLog(log_path, readonly=True) as log:
        with Projector(plain) as p:
            p.project(log)
        with Projector(hashed, address_key=KEY) as p:
            p.project(log)
    text, expected = _dump(hashed), _dump(plain)
    h = AddressHasher(KEY)
    for address in (PHONE, MAIL, "+33699999999", WA):
        assert address in expected
        assert address not in text
        expected = expected.replace(address, h.address(address))
    assert expected == text  # the same rows, each address replaced by its hash
    with duckdb.connect(str(hashed), read_only=True) as con:
        assert con.execute("SELECT addresses FROM projection_info").fetchone() == ("hmac-sha256",)


def test_the_key_is_fixed_when_the_database_is_created(tmp_path: Path, log_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    Projector(db, address_key=KEY).close()
    with pytest.raises(ProjectionError, match="hashed with another key"):
        Projector(db, address_key=b"another key of sixteen bytes")
    with pytest.raises(ProjectionError, match="give their key"):
        Projector(db)
    plain = tmp_path / "plain.duckdb"
    Projector(plain).close()
    with pytest.raises(ProjectionError, match="plain contact addresses"):
        Projector(plain, address_key=KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        AddressHasher(b"short")


@given(st.text(max_size=40), st.text(max_size=40))
def test_the_hash_is_one_value_per_address_and_hides_it(a: str, b: str) -> None:
    h = AddressHasher(KEY)
    assert (h.address(a) == h.address(b)) == (a == b)
    assert h.address(a).startswith("h:") and len(h.address(a)) == 34
    assert AddressHasher(KEY + b"!").address(a) != h.address(a)


def test_cli_projects_hashed_finds_by_address_with_the_key_and_exports_the_manifest(
    tmp_path: Path, log_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db, out = tmp_path / "db.duckdb", tmp_path / "export"
    monkeypatch.setenv("OMNIROUTE_ADDRESS_KEY", KEY.decode())
    key = ["--address-key-env", "OMNIROUTE_ADDRESS_KEY"]
    assert cli.main(["project", str(log_path), "--db", str(db), *key]) == 0
    assert cli.main(["customer", "--db", str(db), PHONE, "--format", "json"]) == 2
    assert f"no customer, merged id or contact address '{PHONE}'" in capsys.readouterr().err
    assert cli.main(["customer", "--db", str(db), PHONE, "--format", "json", *key]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["customer_id"] == "crm-1"
    assert view["channels"] == ["email", "voice"]  # the email joined the call's conversation
    assert cli.main(["export", "--db", str(db), "--to", str(out)]) == 0
    assert "contact addresses: keyed hash (hmac-sha256)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["addresses"] == "hmac-sha256" and manifest["tables"]["contacts"] == 4
    monkeypatch.setenv("OMNIROUTE_ADDRESS_KEY", "short")
    assert cli.main(["project", str(log_path), "--db", str(db), *key]) == 2
    assert "at least 16 bytes" in capsys.readouterr().err
