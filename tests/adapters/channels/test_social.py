"""Facebook Page feed and X Account Activity webhooks, from the vendors' sample payloads.

Facebook: the ``feed`` and ``mention`` values of the Page webhooks reference
(https://developers.facebook.com/docs/graph-api/webhooks/reference/page). X: the payload
examples of "Account Activity data objects" (``for_user_id`` 2244994945, @TwitterDev) and
the direct message sample (sender 3001969357 writing to 4337869213).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniroute.adapters.channels.inbound import BadPayload, CustomerMessage, Ignored
from omniroute.adapters.channels.social import parse_facebook, parse_x
from tests.support.payloads import JSON_VALUES, items_or_bad_payload, mutate

# --- Facebook Page feed ---------------------------------------------------------------

PAGE, USER = "448242228374517", {"id": "24350003812935", "name": "Jane Doe"}
POST = f"{PAGE}_122131676912594941"
COMMENT_ID = "122131676912594941_1213590066982748"


def feed(item: str, verb: str = "add", /, **value: Any) -> dict[str, Any]:
    return {"field": "feed", "value": {"item": item, "verb": verb, "post_id": POST,
                                       "created_time": 1742667604, **value}}  # fmt: skip


def fb_body(*changes: dict[str, Any], **entry: Any) -> bytes:
    fields = {"id": PAGE, "time": 1742667605, "changes": list(changes)} | entry
    return json.dumps({"object": "page", "entry": [fields]}).encode()


COMMENT = feed("comment", comment_id=COMMENT_ID, parent_id=POST, message="Is this in blue?",
               **{"from": USER, "post": {"status_type": "added_photos", "id": POST}})  # fmt: skip
REPLY = feed("comment", comment_id="122131676912594941_542072878449250", parent_id=COMMENT_ID,
             message="Still waiting for an answer", **{"from": USER})  # fmt: skip
VISITOR_POST = feed("status", post_id=f"{PAGE}_9901", message="My delivery is late",
                    published=1, **{"from": USER})  # fmt: skip
PAGE_REPLY = feed("comment", comment_id=f"{POST[17:]}_777", message="We'll DM you",
                  **{"from": {"id": PAGE, "name": "Acme"}})  # fmt: skip
EDITED = feed("comment", "edited", comment_id=COMMENT_ID, message="Is it blue?", **{"from": USER})
REMOVED = feed("comment", "remove", comment_id=COMMENT_ID, parent_id=POST)
HIDDEN = feed("comment", "hide", comment_id=COMMENT_ID)
REACTION = feed("reaction", parent_id=POST, reaction_type="love", **{"from": USER})
LIKE = {"field": "feed", "value": {"item": "like", "verb": "add", "user_id": 1186329501459477}}
SHARE = feed("share", share_id="9902", **{"from": USER})
MENTION = {"field": "mention", "value": {
    "post_id": "1010_2020", "verb": "add", "item": "post", "sender_name": "Sam Roe",
    "sender_id": "5550001", "created_time": 1520383571, "message": "@Acme my router is dead",
}}  # fmt: skip
RATINGS = {"field": "ratings", "value": {"item": "rating", "verb": "add"}}


def fb(message_id: str, text: str, kind: str = "comment", **fields: Any) -> CustomerMessage:
    defaults: dict[str, Any] = {
        "provider": "facebook", "channel": "social", "message_id": message_id,
        "sender": USER["id"], "recipient": PAGE, "ts": 1742667604000, "kind": kind,
        "text": text, "name": USER["name"], "thread": POST,
    }  # fmt: skip
    return CustomerMessage(**(defaults | fields))


def test_customer_comments_and_replies_are_messages_threaded_by_post() -> None:
    assert parse_facebook(fb_body(COMMENT, REPLY)) == [
        fb(COMMENT_ID, "Is this in blue?"),
        fb("122131676912594941_542072878449250", "Still waiting for an answer"),
    ]


def test_a_visitor_post_on_the_page_is_a_message_of_its_own_thread() -> None:
    post_id = f"{PAGE}_9901"
    assert parse_facebook(fb_body(VISITOR_POST)) == [
        fb(post_id, "My delivery is late", kind="post", thread=post_id)
    ]


def test_a_mention_names_its_sender_from_the_sender_fields() -> None:
    assert parse_facebook(fb_body(MENTION)) == [
        fb("1010_2020", "@Acme my router is dead", kind="mention", sender="5550001",
           name="Sam Roe", ts=1520383571000, thread="1010_2020"),
    ]  # fmt: skip


def test_what_is_not_a_customer_comment_is_ignored_with_a_reason() -> None:
    changes = [PAGE_REPLY, EDITED, REMOVED, HIDDEN, REACTION, LIKE, SHARE, RATINGS]
    assert parse_facebook(fb_body(*changes, messaging=[{"sender": {"id": "1"}}])) == [
        Ignored(provider="facebook", reason="echo", ref=f"{POST[17:]}_777"),
        Ignored(provider="facebook", reason="edit", ref=COMMENT_ID),
        Ignored(provider="facebook", reason="delete", ref=COMMENT_ID),
        Ignored(provider="facebook", reason="unsupported", ref=COMMENT_ID),
        Ignored(provider="facebook", reason="reaction", ref=POST),
        Ignored(provider="facebook", reason="reaction"),
        Ignored(provider="facebook", reason="unsupported", ref=POST),
        Ignored(provider="facebook", reason="unsupported", ref="ratings"),
        Ignored(provider="facebook", reason="unsupported", ref="messaging"),
    ]


def test_a_comment_without_author_or_time_loses_only_itself() -> None:
    anonymous = copy.deepcopy(COMMENT)
    del anonymous["value"]["from"]
    untimed = copy.deepcopy(REPLY)
    del untimed["value"]["created_time"]
    raw = json.loads(fb_body(anonymous, untimed, VISITOR_POST))
    del raw["entry"][0]["time"]
    assert parse_facebook(json.dumps(raw).encode()) == [
        Ignored(provider="facebook", reason="bad_sender", ref=COMMENT_ID),
        Ignored(provider="facebook", reason="bad_timestamp",
                ref="122131676912594941_542072878449250"),
        fb(f"{PAGE}_9901", "My delivery is late", kind="post", thread=f"{PAGE}_9901"),
    ]  # fmt: skip


def test_the_entry_time_stands_in_for_a_missing_created_time() -> None:
    untimed = copy.deepcopy(COMMENT)
    del untimed["value"]["created_time"]
    assert parse_facebook(fb_body(untimed)) == [
        fb(COMMENT_ID, "Is this in blue?", ts=1742667605000)
    ]


def test_a_comment_twice_in_one_body_is_returned_once() -> None:
    as_mention = {"field": "mention", "value": COMMENT["value"]}
    assert parse_facebook(fb_body(COMMENT, as_mention, COMMENT)) == [
        fb(COMMENT_ID, "Is this in blue?")
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "body is not an object"),
        (b'{"object": "instagram", "entry": []}', "object is not 'page'"),
        (b'{"object": "page"}', "entry is not a list"),
        (b'{"object": "page", "entry": [1]}', "entry is not an object"),
        (b'{"object": "page", "entry": [{"changes": []}]}', "id is missing"),
        (b'{"object": "page", "entry": [{"id": "1", "changes": {}}]}', "changes is not a list"),
        (fb_body({"field": "feed", "value": "x"}), "value is not an object"),
        (fb_body(feed("comment", message="no id", **{"from": USER})), "without its post_id or"),
        (fb_body(feed("comment", comment_id="1", message=7, **{"from": USER})), "message is not a"),
        (fb_body(feed("comment", comment_id=COMMENT_ID, **{"from": "Jane"})), "from is not"),
        (fb_body(feed("status", post_id=[1])), "post_id is not an id"),
    ],
)  # fmt: skip
def test_malformed_facebook_bodies_are_bad_payloads(raw: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        parse_facebook(raw)


# --- X Account Activity API -----------------------------------------------------------

US = "2244994945"
TWEET_USER = {
    "id": 6253282,
    "id_str": "6253282",
    "name": "Twitter API",
    "screen_name": "TwitterAPI",
}
MENTION_TWEET: dict[str, Any] = {
    "created_at": "Wed Oct 10 20:19:24 +0000 2018", "id": 1050118621198921728,
    "id_str": "1050118621198921728", "text": "@TwitterDev my webhook stopped working",
    "in_reply_to_status_id": None, "in_reply_to_status_id_str": None,
    "in_reply_to_user_id_str": US, "user": TWEET_USER, "timestamp_ms": "1539202764000",
    "entities": {"user_mentions": [{"screen_name": "TwitterDev", "id_str": US}]},
}  # fmt: skip
REPLY_TWEET = MENTION_TWEET | {
    "id_str": "1050118621198921729", "in_reply_to_status_id_str": "1050000000000000000",
    "text": "@TwitterDev @TwitterAPI still broken", "timestamp_ms": "1539202765000",
}  # fmt: skip
LONG_TWEET = MENTION_TWEET | {
    "id_str": "1050118621198921730", "truncated": True, "text": "@TwitterDev a long…",
    "extended_tweet": {"full_text": "@TwitterDev a long story about my webhook"},
}  # fmt: skip
OUR_TWEET = MENTION_TWEET | {
    "id_str": "1050118621198921731", "user": {"id_str": US, "screen_name": "TwitterDev"}
}  # fmt: skip
RETWEET = MENTION_TWEET | {"id_str": "1050118621198921732", "retweeted_status": OUR_TWEET}
EDIT = MENTION_TWEET | {
    "id_str": "1050118621198921733",
    "edit_history": {"initial_tweet_id": "1050118621198921728",
                     "edit_tweet_ids": ["1050118621198921728", "1050118621198921733"]},
}  # fmt: skip
DM_USERS = {
    "3001969357": {"id": "3001969357", "created_timestamp": "1422556069340",
                   "name": "Jordan Brinks", "screen_name": "furiouscamper"},
    US: {"id": US, "name": "TwitterDev", "screen_name": "TwitterDev"},
}  # fmt: skip


def dm(dm_id: str, sender: str, text: str, **event: Any) -> dict[str, Any]:
    to = US if sender != US else "3001969357"
    create = {"target": {"recipient_id": to}, "sender_id": sender, "message_data": {"text": text}}
    return {"type": "message_create", "id": dm_id, "created_timestamp": "1516403560557",
            "message_create": create} | event  # fmt: skip


DM = dm("954491830116155396", "3001969357", "Hello World!")
OUR_DM = dm("954491830116155397", US, "Hi Jordan, how can we help?")


def x_body(**fields: Any) -> bytes:
    return json.dumps({"for_user_id": US, **fields}).encode()


def x(message_id: str, text: str, **fields: Any) -> CustomerMessage:
    defaults: dict[str, Any] = {
        "provider": "x", "channel": "social", "message_id": message_id, "sender": "6253282",
        "recipient": US, "ts": 1539202764000, "kind": "mention", "text": text,
        "name": "Twitter API", "sender_ids": {"screen_name": "TwitterAPI"}, "thread": message_id,
    }  # fmt: skip
    return CustomerMessage(**(defaults | fields))


def test_mentions_and_replies_are_messages_threaded_by_the_tweet_replied_to() -> None:
    raw = x_body(user_has_blocked="false", tweet_create_events=[MENTION_TWEET, REPLY_TWEET])
    assert parse_x(raw) == [
        x("1050118621198921728", "@TwitterDev my webhook stopped working"),
        x("1050118621198921729", "@TwitterDev @TwitterAPI still broken", ts=1539202765000,
          thread="1050000000000000000"),
    ]  # fmt: skip


def test_a_long_tweet_is_read_in_full_and_created_at_stands_in_for_timestamp_ms() -> None:
    untimed = {k: v for k, v in LONG_TWEET.items() if k != "timestamp_ms"}
    assert parse_x(x_body(tweet_create_events=[untimed])) == [
        x("1050118621198921730", "@TwitterDev a long story about my webhook")
    ]


def test_our_tweets_retweets_and_edits_are_ignored() -> None:
    assert parse_x(x_body(tweet_create_events=[OUR_TWEET, RETWEET, EDIT])) == [
        Ignored(provider="x", reason="echo", ref="1050118621198921731"),
        Ignored(provider="x", reason="retweet", ref="1050118621198921732"),
        Ignored(provider="x", reason="edit", ref="1050118621198921733"),
    ]


def test_a_tweet_without_a_readable_time_loses_only_itself() -> None:
    untimed = {k: v for k, v in REPLY_TWEET.items() if k != "timestamp_ms"}
    untimed["created_at"] = "yesterday"
    assert parse_x(x_body(tweet_create_events=[untimed, MENTION_TWEET])) == [
        Ignored(provider="x", reason="bad_timestamp", ref="1050118621198921729"),
        x("1050118621198921728", "@TwitterDev my webhook stopped working"),
    ]


def test_a_direct_message_is_a_dm_named_from_the_users_map() -> None:
    raw = x_body(direct_message_events=[DM, OUR_DM], users=DM_USERS)
    assert parse_x(raw) == [
        x("954491830116155396", "Hello World!", sender="3001969357", ts=1516403560557,
          kind="dm", name="Jordan Brinks", sender_ids={"screen_name": "furiouscamper"},
          thread="3001969357"),
        Ignored(provider="x", reason="echo", ref="954491830116155397"),
    ]  # fmt: skip


def test_a_direct_message_without_its_user_has_no_name() -> None:
    assert parse_x(x_body(direct_message_events=[DM])) == [
        x("954491830116155396", "Hello World!", sender="3001969357", ts=1516403560557,
          kind="dm", name=None, sender_ids={}, thread="3001969357"),
    ]  # fmt: skip


def test_account_events_that_are_not_messages_are_ignored() -> None:
    raw = x_body(
        favorite_events=[{"id": "a7ba59eab0bfcba386f7acedac279542",
                          "created_at": "Mon Mar 26 16:33:26 +0000 2018",
                          "timestamp_ms": 1522082006140, "favorited_status": OUR_TWEET,
                          "user": TWEET_USER}],
        follow_events=[{"type": "follow", "created_timestamp": "1517588749178",
                        "target": {"id": US}, "source": {"id": "6253282"}}],
        direct_message_indicate_typing_events=[{"created_timestamp": "1518127183443",
                                                "sender_id": "3001969357",
                                                "target": {"recipient_id": US}}],
        direct_message_mark_read_events=[{"created_timestamp": "1518452444662",
                                          "sender_id": "3001969357",
                                          "target": {"recipient_id": US},
                                          "last_read_event_id": "963085315333238788"}],
        tweet_delete_events=[{"status": {"id": "1045405559317569537", "user_id": "6253282"},
                              "timestamp_ms": "1432228155593"}],
        user_event={"revoke": {"date_time": "2018-05-24T09:48:12+00:00",
                               "target": {"app_id": "13090192"},
                               "source": {"user_id": "63046977"}}},
        direct_message_events=[DM | {"type": "welcome_message_rule_create"}],
    )  # fmt: skip
    assert parse_x(raw) == [
        Ignored(provider="x", reason="reaction", ref="a7ba59eab0bfcba386f7acedac279542"),
        Ignored(provider="x", reason="unsupported"),
        Ignored(provider="x", reason="typing"),
        Ignored(provider="x", reason="status"),
        Ignored(provider="x", reason="delete", ref="1045405559317569537"),
        Ignored(provider="x", reason="unsupported"),
        Ignored(provider="x", reason="unsupported", ref="954491830116155396"),
    ]


def test_a_tweet_or_dm_twice_in_one_body_is_returned_once() -> None:
    again = MENTION_TWEET | {"text": "a second copy"}
    raw = x_body(tweet_create_events=[MENTION_TWEET, again], direct_message_events=[DM, DM])
    assert [i.message_id for i in parse_x(raw) if isinstance(i, CustomerMessage)] == [
        "1050118621198921728", "954491830116155396",
    ]  # fmt: skip
    assert parse_x(raw)[0] == x("1050118621198921728", "@TwitterDev my webhook stopped working")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b'"for_user_id"', "body is not an object"),
        (b'{"tweet_create_events": []}', "for_user_id is missing"),
        (x_body(tweet_create_events={}), "tweet_create_events is not a list"),
        (x_body(tweet_create_events=[1]), "tweet is not an object"),
        (x_body(tweet_create_events=[{"id_str": "1"}]), "user is not an object"),
        (x_body(tweet_create_events=[MENTION_TWEET | {"text": 1}]), "text is not a string"),
        (x_body(tweet_create_events=[{"user": TWEET_USER}]), "id_str is missing"),
        (x_body(direct_message_events=[{"type": "message_create"}]), "id is missing"),
        (x_body(direct_message_events=[DM | {"message_create": None}]), "message_create is not"),
        (x_body(direct_message_events=[DM], users=[1]), "users is not an object"),
        (x_body(direct_message_events=[DM], users={"3001969357": "Jordan"}), "user is not"),
    ],
)  # fmt: skip
def test_malformed_x_bodies_are_bad_payloads(raw: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        parse_x(raw)


# --- fuzz: any body is items or a BadPayload ------------------------------------------


@given(st.binary())
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    items_or_bad_payload(lambda: parse_facebook(raw))
    items_or_bad_payload(lambda: parse_x(raw))


@given(JSON_VALUES)
def test_random_json_never_raises_anything_else(value: Any) -> None:
    raw = json.dumps(value).encode()
    items_or_bad_payload(lambda: parse_facebook(raw))
    items_or_bad_payload(lambda: parse_x(raw))


FB_FIXTURES = [COMMENT, REPLY, VISITOR_POST, PAGE_REPLY, EDITED, REACTION, LIKE, MENTION]
X_FIXTURES = [
    x_body(tweet_create_events=[MENTION_TWEET, REPLY_TWEET, LONG_TWEET, RETWEET, EDIT]),
    x_body(direct_message_events=[DM, OUR_DM], users=DM_USERS),
    x_body(favorite_events=[{"id": "a7", "user": TWEET_USER}], user_event={"revoke": {}}),
]
PATHS = st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=7)
REPLACEMENTS = JSON_VALUES | st.just("<drop>") | st.sampled_from([US, PAGE, "add", "comment"])


@settings(max_examples=300)
@given(st.lists(st.sampled_from(FB_FIXTURES), min_size=1, max_size=3), PATHS, REPLACEMENTS)
def test_mutated_facebook_fixtures_never_raise_anything_else(
    changes: list[dict[str, Any]], path: list[int], replacement: Any
) -> None:
    doc = json.loads(fb_body(*changes))
    items_or_bad_payload(
        lambda: parse_facebook(json.dumps(mutate(doc, path, replacement)).encode())
    )


@settings(max_examples=300)
@given(st.sampled_from(X_FIXTURES), PATHS, REPLACEMENTS)
def test_mutated_x_fixtures_never_raise_anything_else(
    raw: bytes, path: list[int], replacement: Any
) -> None:
    doc = mutate(json.loads(raw), path, replacement)
    items_or_bad_payload(lambda: parse_x(json.dumps(doc).encode()))


def test_deeply_nested_json_is_a_bad_payload() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    items_or_bad_payload(lambda: parse_facebook(deep))
    items_or_bad_payload(lambda: parse_x(deep))
