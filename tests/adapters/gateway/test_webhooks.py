"""Provider webhooks through the gateway into the embedded log: what each one becomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniroute.adapters.channels.signatures import meta_signature
from omniroute.adapters.gateway.intake import reply_token
from omniroute.engine.events import (
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationEnded,
    ConversationRejoined,
    CustomerAbandoned,
    MessageReceived,
    is_decision,
)
from tests.support import webhooks as hooks

from .conftest import SECRET, TWILIO_URL, logged

WA = "/webhooks/whatsapp/main"


def inputs(path: Path) -> list[object]:
    return [e for e in logged(path) if not is_decision(e)]


def post(client, path: str, request: tuple[bytes, dict[str, str]]):
    body, headers = request
    return client.post(path, content=body, headers=headers)


def test_a_whatsapp_message_opens_a_conversation_routed_by_the_table(make_client, tmp_path):
    client = make_client()
    r = post(
        client, WA, hooks.whatsapp_text(SECRET, "wamid.A1", "447700900123", "A refund, please")
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "items": {"arrived": 1}}
    [arrived] = inputs(tmp_path / "g.olog")
    assert isinstance(arrived, ConversationArrived)
    assert arrived.id == arrived.conversation_id == "whatsapp:wamid.A1"
    assert arrived.contact == Contact("whatsapp", "+447700900123")
    assert (arrived.queue, arrived.skills, arrived.priority) == ("default", {"billing": 1}, 1)
    assert arrived.attributes == {"provider": "whatsapp", "source": "main", "kind": "text"}


def test_retries_and_follow_ups_are_never_a_second_contact(make_client, tmp_path):
    client = make_client()
    first = hooks.whatsapp_text(SECRET, "wamid.B1", "447700900123", "hello")
    for _ in range(5):
        assert post(client, WA, first).status_code == 200
    r = post(client, WA, hooks.whatsapp_text(SECRET, "wamid.B2", "447700900123", "anyone?"))
    assert r.json()["items"] == {"message": 1}
    got = inputs(tmp_path / "g.olog")
    assert [type(e) for e in got] == [ConversationArrived, MessageReceived]
    message = got[1]
    assert isinstance(message, MessageReceived)
    assert (message.conversation_id, message.leg, message.id) == (
        "whatsapp:wamid.B1", "whatsapp:wamid.B1", "whatsapp:wamid.B2",
    )  # fmt: skip


def test_the_same_message_twice_in_one_post_is_one_contact(make_client, tmp_path):
    client = make_client()
    body, headers = hooks.whatsapp_text(SECRET, "wamid.C1", "447700900123", "hi")
    payload = json.loads(body)
    entry = payload["entry"][0]
    payload["entry"].append(entry)
    body = json.dumps(payload).encode()
    headers["x-hub-signature-256"] = meta_signature(SECRET, body)
    assert client.post(WA, content=body, headers=headers).status_code == 200
    assert [type(e) for e in inputs(tmp_path / "g.olog")] == [ConversationArrived]


def test_a_customer_who_writes_then_calls_is_one_conversation_with_two_legs(make_client, tmp_path):
    client = make_client()
    post(client, WA, hooks.whatsapp_text(SECRET, "wamid.D1", "447700900123", "my router"))
    call = hooks.twilio_call(SECRET, TWILIO_URL, "CA" + "1" * 32, "+447700900123")
    r = post(client, "/webhooks/twilio/main", call)
    assert r.status_code == 200
    assert "<Enqueue>twilio:CA" in r.text
    assert post(client, "/webhooks/twilio/main", call).status_code == 200  # answered: again
    events = logged(tmp_path / "g.olog")
    [rejoined] = [e for e in events if isinstance(e, ConversationRejoined)]
    assert rejoined.conversation_id == "whatsapp:wamid.D1"
    assert rejoined.new_conversation_id == "twilio:CA" + "1" * 32
    assert rejoined.channel == "voice"
    assert sum(isinstance(e, ConversationArrived) for e in events) == 2
    ended = hooks.twilio_call(SECRET, TWILIO_URL, "CA" + "1" * 32, "+447700900123", "completed")
    for _ in range(2):
        assert post(client, "/webhooks/twilio/main", ended).status_code == 200
    [gone] = [
        e
        for e in inputs(tmp_path / "g.olog")
        if isinstance(e, CustomerAbandoned | ConversationEnded)
    ]
    assert isinstance(gone, CustomerAbandoned)  # nobody had answered it
    assert gone.leg == "twilio:CA" + "1" * 32
    assert gone.conversation_id == "whatsapp:wamid.D1"


def test_each_provider_opens_a_conversation(make_client, tmp_path):
    client = make_client()
    requests = {
        "messenger": hooks.messenger_text(SECRET, "m_1", "1254459154682919", "hi"),
        "facebook": hooks.facebook_comment(SECRET, "682498302938465_1_9", "7001", "broken?"),
        "telegram": hooks.telegram_text(SECRET, 10000, 1111111, "/start"),
        "twilio": hooks.twilio_sms(SECRET, TWILIO_URL, "SM" + "2" * 32, "+447700900124", "hi"),
        "email": hooks.email(SECRET, "m1@example.net", "Kim@Example.net", "Help me"),
        "webchat": hooks.webchat(SECRET, "w-1", "visitor-1", "hello"),
        "x": hooks.x_dm(SECRET, "1494391298", "4001", "hello"),
    }
    for provider, request in requests.items():
        r = post(client, f"/webhooks/{provider}/main", request)
        assert r.status_code == 200, (provider, r.text)
    got = inputs(tmp_path / "g.olog")
    channels = [(e.channel, e.contact.address) for e in got if isinstance(e, ConversationArrived)]
    assert channels == [
        ("messenger", "1254459154682919"), ("social", "7001"), ("telegram", "1111111"),
        ("sms", "+447700900124"), ("email", "kim@example.net"), ("webchat", "visitor-1"),
        ("social", "4001"),
    ]  # fmt: skip


def test_email_joins_a_thread_only_from_its_own_sender(make_client, tmp_path):
    client = make_client()
    mail = "/webhooks/email/main"
    post(client, mail, hooks.email(SECRET, "root@a.example", "kim@a.example", "order 1"))
    reply = hooks.email(
        SECRET, "r1@a.example", "kim@a.example", "more", references="root@a.example"
    )
    assert post(client, mail, reply).json()["items"] == {"message": 1}
    intruder = hooks.email(SECRET, "x1@b.example", "eve@b.example", "me too",
                           references="root@a.example")  # fmt: skip
    assert post(client, mail, intruder).json()["items"] == {"arrived": 1}
    got = [e for e in inputs(tmp_path / "g.olog") if isinstance(e, ConversationArrived)]
    assert [e.contact.address for e in got] == ["kim@a.example", "eve@b.example"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"x-hub-signature-256": "sha256=" + "0" * 64}, 403)],
)
def test_an_unsigned_or_badly_signed_webhook_is_refused_and_counted(
    make_client, tmp_path, headers, status
):
    client = make_client()
    body, _ = hooks.whatsapp_text(SECRET, "wamid.E1", "447700900123", "hi")
    r = client.post(WA, content=body, headers=headers)
    assert r.status_code == status
    assert r.json()["reason"] == "signature"
    assert inputs(tmp_path / "g.olog") == []
    metrics = client.get("/metrics").text
    assert 'omniroute_gateway_rejects_total{provider="whatsapp",reason="signature"} 1.0' in metrics


def test_a_malformed_body_is_a_400_with_the_reason_and_never_logged(make_client, tmp_path):
    client = make_client()
    body = b'{"object": "whatsapp_business_account", "entry": 7}'
    r = client.post(WA, content=body, headers={"x-hub-signature-256": meta_signature(SECRET, body)})
    assert r.status_code == 400
    assert "entry" in r.json()["error"]
    assert inputs(tmp_path / "g.olog") == []


def test_limits_unknown_sources_and_rates(make_client):
    client = make_client(max_body_bytes=2048, rate_per_s=1, rate_burst=3)
    assert client.post("/webhooks/whatsapp/other", content=b"{}").status_code == 404
    assert client.post(WA, content=b"x" * 4096).status_code == 413
    codes = [client.post(WA, content=b"{}").status_code for _ in range(3)]
    assert codes[-1] == 429


def test_meta_and_x_handshakes(make_client):
    client = make_client()
    ok = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    r = client.get(WA, params=ok)
    assert (r.status_code, r.text) == (200, "1158201444")
    assert client.get(WA, params={**ok, "hub.verify_token": "nope"}).status_code == 403
    r = client.get("/webhooks/x/main", params={"crc_token": "abc"})
    assert r.json()["response_token"].startswith("sha256=")


def test_health_and_metrics(make_client):
    client = make_client()
    post(client, WA, hooks.whatsapp_text(SECRET, "wamid.F1", "447700900123", "hi"))
    assert client.get("/health").json()["status"] == "ok"
    text = client.get("/metrics").text
    assert 'omniroute_gateway_items_total{outcome="arrived",provider="whatsapp"} 1.0' in text


_PROVIDERS = ["whatsapp", "messenger", "instagram", "facebook", "telegram", "twilio", "email",
              "webchat", "x"]  # fmt: skip


def test_any_body_is_answered_never_a_server_error(make_client):
    """Random bodies, signed or not, to every provider: accepted, ignored or refused (4xx)."""
    client = make_client()

    @settings(max_examples=80, deadline=None)
    @given(provider=st.sampled_from(_PROVIDERS), body=st.binary(max_size=300), sign=st.booleans())
    def check(provider: str, body: bytes, sign: bool) -> None:
        headers = {
            "x-hub-signature-256": meta_signature(SECRET, body),
            "x-telegram-bot-api-secret-token": SECRET,
            "authorization": f"Bearer {SECRET}",
        } if sign else {}  # fmt: skip
        r = client.post(f"/webhooks/{provider}/main", content=body, headers=headers)
        assert r.status_code in (200, 400, 401, 403), (r.status_code, r.text)

    check()


def test_a_verified_webchat_email_links_the_visitor_to_their_mail(make_client, tmp_path):
    client = make_client()
    post(client, "/webhooks/email/main", hooks.email(SECRET, "m9@a.example", "kim@a.example", "hi"))
    chat = hooks.webchat(SECRET, "w-9", "visitor-9", "still there?", email="Kim@A.example")
    assert post(client, "/webhooks/webchat/main", chat).json()["items"] == {"arrived": 1}
    events = logged(tmp_path / "g.olog")
    [linked] = [e for e in events if isinstance(e, ContactsLinked)]
    assert linked.contacts == [Contact("webchat", "visitor-9"), Contact("email", "kim@a.example")]
    [rejoined] = [e for e in events if isinstance(e, ConversationRejoined)]
    assert (rejoined.conversation_id, rejoined.channel) == ("email:m9@a.example", "webchat")


def test_signed_whatsapp_payloads_with_any_fields_are_never_a_server_error(make_client):
    """Well-signed webhooks of the right shape with arbitrary ids, numbers and text: each is
    stored or ignored, or refused 400; a repeat changes nothing."""
    client = make_client()
    ids = st.text(min_size=1, max_size=300)
    numbers = st.text(max_size=30) | st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True)

    @settings(max_examples=60, deadline=None)
    @given(mid=ids, sender=numbers, text=st.text(max_size=200), ts=st.integers(-5, 2**40))
    def check(mid: str, sender: str, text: str, ts: int) -> None:
        request = hooks.whatsapp_text(SECRET, mid, sender, text, ts=ts)
        first = post(client, WA, request)
        assert first.status_code in (200, 400), first.text
        if first.status_code == 200:
            again = post(client, WA, request)
            assert again.json()["accepted"] == 0, again.text

    check()


def test_email_to_a_reply_token_address_joins_that_leg_from_its_own_sender(make_client, tmp_path):
    """Mail clients that drop References still reach the thread by its reply address."""
    client = make_client()
    mail = "/webhooks/email/main"
    post(client, mail, hooks.email(SECRET, "t1@a.example", "kim@a.example", "order 7"))
    token = reply_token("email:t1@a.example")
    to = f"support+{token}@acme.example"
    reply = hooks.email(SECRET, "t2@a.example", "kim@a.example", "any news?", to=to)
    assert post(client, mail, reply).json()["items"] == {"message": 1}
    other = hooks.email(SECRET, "t3@b.example", "eve@b.example", "me?", to=to)
    assert post(client, mail, other).json()["items"] == {"arrived": 1}
    wrong = hooks.email(SECRET, "t4@a.example", "kim@a.example", "hm", to="support+0@acme.example")
    assert post(client, mail, wrong).json()["items"] == {"arrived": 1}  # a new thread: a rejoin
