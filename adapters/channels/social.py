"""Social channels: Facebook Page feed and X (Twitter) webhooks -> customer messages.

Both use omniroute's ``social`` channel, ``provider`` ``facebook`` or ``x``; the thread is
the post (or the DM sender), so replies in one thread are one conversation.

**Facebook Page feed** (:func:`parse_facebook`, signed with ``X-Hub-Signature-256``,
:func:`.signatures.check_meta`): ``{"object": "page", "entry": [{"id": PAGE, "time": s,
"changes": [{"field": "feed" | "mention", "value": {...}}]}]}``, values per
https://developers.facebook.com/docs/graph-api/webhooks/reference/page (``item``,
``verb``, ``from{id,name}`` or ``sender_id``/``sender_name``, ``post_id``, ``comment_id``,
``parent_id``, ``message``, ``created_time`` unix seconds).

- ``item`` comment / post / status / photo / video with ``verb`` add -> :class:`CustomerMessage`
  ``kind`` ``comment`` or ``post`` (``mention`` for the mention field), ``sender`` the
  author's id, ``recipient`` the page, ``thread`` the ``post_id``, ``message_id`` the
  ``comment_id`` (a comment) or ``post_id``; the page's own -> ``Ignored("echo")``;
- ``verb`` edited -> ``"edit"``, remove -> ``"delete"``, other verbs (hide...) ->
  ``"unsupported"``; ``item`` reaction / like -> ``"reaction"``; any other item, field or
  Messenger ``messaging`` event -> ``"unsupported"``;
- no author -> ``"bad_sender"``; no time (``created_time``, else the entry's) ->
  ``"bad_timestamp"``.

**X Account Activity API** (:func:`parse_x`, signed with ``x-twitter-webhooks-signature``,
:func:`.signatures.check_x`), https://docs.x.com/x-api/account-activity/introduction and
the data objects at https://developer.x.com/en/docs/twitter-api/enterprise/account-activity-api/guides/account-activity-data-objects:
``{"for_user_id": OURS, "tweet_create_events": [TWEET], "direct_message_events": [DM],
"users": {id: USER}, ...}``.

- a tweet by another user (a mention of or reply to us) -> ``kind="mention"``, ``sender``
  ``user.id_str``, ``name`` the user's name (``sender_ids["screen_name"]``), ``recipient``
  ``for_user_id``, ``thread`` ``in_reply_to_status_id_str`` or its own ``id_str``, text
  the ``extended_tweet.full_text`` / ``full_text`` / ``text``, ``ts`` ``timestamp_ms``
  or ``created_at``; our own tweets -> ``"echo"``, retweets -> ``"retweet"``, an edit
  (``edit_history`` naming an earlier tweet) -> ``"edit"``;
- a ``message_create`` DM (https://developer.x.com/en/docs/direct-messages/sending-and-receiving/guides/message-create-object)
  -> ``kind="dm"``, ``thread`` the sender's id, ``ts`` ``created_timestamp`` (ms); our
  own -> ``"echo"``;
- favorites -> ``"reaction"``, read receipts -> ``"status"``, typing -> ``"typing"``,
  tweet deletes -> ``"delete"``, follows, blocks, mutes, revokes... -> ``"unsupported"``.

A body that is not JSON or not this shape raises :class:`BadPayload`; a message id twice
in one body is returned once (the first).
"""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from .inbound import (
    BadPayload,
    CustomerMessage,
    Ignored,
    Item,
    first_of_each,
    json_body,
    optional_str,
)

__all__ = ["parse_facebook", "parse_x"]

_FB_CONTENT = {"comment": "comment", "post": "post", "status": "post", "photo": "post",
               "video": "post"}  # fmt: skip
_FB_VERBS = {"edited": "edit", "edit": "edit", "remove": "delete", "delete": "delete"}
_X_IGNORED = {
    "favorite_events": "reaction", "direct_message_mark_read_events": "status",
    "direct_message_indicate_typing_events": "typing", "tweet_delete_events": "delete",
}  # fmt: skip


def parse_facebook(body: bytes) -> list[Item]:
    """The items of one Page feed webhook body, in the order sent."""
    root = _obj(json_body(body), "body")
    if root.get("object") != "page":
        raise BadPayload(f"object is not 'page': {root.get('object')!r:.40}")
    items: list[Item] = []
    for entry in _list(root, "entry", required=True):
        entry = _obj(entry, "entry")
        page, time = _id(entry, "id"), entry.get("time")
        for change in _list(entry, "changes"):
            change = _obj(change, "change")
            field = change.get("field")
            if field in ("feed", "mention"):
                items.append(_fb(_obj(change.get("value"), "value"), field, page, time))
            else:
                ref = field if isinstance(field, str) else None
                items.append(Ignored(provider="facebook", reason="unsupported", ref=ref))
        for _ in _list(entry, "messaging"):
            items.append(Ignored(provider="facebook", reason="unsupported", ref="messaging"))
    return first_of_each(items)


def _fb(value: dict[str, Any], field: str, page: str, entry_time: Any) -> Item:
    item, verb = optional_str(value, "item"), optional_str(value, "verb")
    post_id, comment_id = _opt_id(value, "post_id"), _opt_id(value, "comment_id")
    ref = comment_id or post_id

    def ignored(reason: str) -> Ignored:
        return Ignored(provider="facebook", reason=reason, ref=ref)

    if item in ("reaction", "like"):
        return ignored("reaction")
    if item not in _FB_CONTENT:
        return ignored("unsupported")
    if verb != "add":
        return ignored(_FB_VERBS.get(verb or "", "unsupported"))
    author = _obj(value.get("from"), "from", optional=True)
    sender = _opt_id(author, "id") or _opt_id(value, "sender_id")
    name = optional_str(author, "name") or optional_str(value, "sender_name")
    if post_id is None or (item == "comment" and comment_id is None):
        raise BadPayload(f"a {item} without its post_id or comment_id")
    if sender is None:
        return ignored("bad_sender")
    if sender == page:
        return ignored("echo")
    ts = _ms(value.get("created_time"), seconds=True) or _ms(entry_time, seconds=True)
    if ts is None:
        return ignored("bad_timestamp")
    kind = "mention" if field == "mention" else _FB_CONTENT[item]
    return CustomerMessage(
        provider="facebook", channel="social", message_id=ref or post_id, sender=sender,
        recipient=page, ts=ts, kind=kind, text=optional_str(value, "message") or "", name=name,
        thread=post_id,
    )  # fmt: skip


def parse_x(body: bytes) -> list[Item]:
    """The items of one Account Activity API webhook body, in the order sent."""
    root = _obj(json_body(body), "body")
    us = _id(root, "for_user_id")
    users = _obj(root.get("users"), "users", optional=True)
    items: list[Item] = []
    for key, events in root.items():
        if key == "tweet_create_events":
            items += [_tweet(_obj(t, "tweet"), us) for t in _list(root, key)]
        elif key == "direct_message_events":
            items += [_dm(_obj(e, "direct message event"), us, users) for e in _list(root, key)]
        elif key.endswith("_events") or key == "user_event":  # follows, likes, revokes...
            reason = _X_IGNORED.get(key, "unsupported")
            for event in events if isinstance(events, list) else [events]:
                event = event if isinstance(event, dict) else {}
                status = _obj(event.get("status"), "status", optional=True)
                ref = _opt_id(event, "id") or _opt_id(status, "id")
                items.append(Ignored(provider="x", reason=reason, ref=ref))
    return first_of_each(items)


def _tweet(tweet: dict[str, Any], us: str) -> Item:
    tweet_id, user = _id(tweet, "id_str"), _obj(tweet.get("user"), "user")
    sender = _id(user, "id_str")
    first = _opt_id(_obj(tweet.get("edit_history"), "edit_history", True), "initial_tweet_id")
    ts = _ms(tweet.get("timestamp_ms")) or _created_at(tweet.get("created_at"))
    reason = (
        "echo" if sender == us
        else "retweet" if tweet.get("retweeted_status") is not None
        else "edit" if first not in (None, tweet_id)
        else "bad_timestamp" if ts is None
        else None
    )  # fmt: skip
    if reason is not None or ts is None:
        return Ignored(provider="x", reason=reason or "bad_timestamp", ref=tweet_id)
    full = optional_str(_obj(tweet.get("extended_tweet"), "extended_tweet", True), "full_text")
    text = full or optional_str(tweet, "full_text") or optional_str(tweet, "text") or ""
    screen_name = optional_str(user, "screen_name")
    return CustomerMessage(
        provider="x", channel="social", message_id=tweet_id, sender=sender, recipient=us,
        ts=ts, kind="mention", text=text, name=optional_str(user, "name") or screen_name,
        sender_ids={"screen_name": screen_name} if screen_name else {},
        thread=_opt_id(tweet, "in_reply_to_status_id_str") or tweet_id,
    )  # fmt: skip


def _dm(event: dict[str, Any], us: str, users: dict[str, Any]) -> Item:
    dm_id = _id(event, "id")
    if event.get("type") != "message_create":
        return Ignored(provider="x", reason="unsupported", ref=dm_id)
    create = _obj(event.get("message_create"), "message_create")
    sender = _id(create, "sender_id")
    if sender == us:
        return Ignored(provider="x", reason="echo", ref=dm_id)
    ts = _ms(event.get("created_timestamp"))
    if ts is None:
        return Ignored(provider="x", reason="bad_timestamp", ref=dm_id)
    data = _obj(create.get("message_data"), "message_data", optional=True)
    user = _obj(users.get(sender), "user", optional=True)
    screen_name = optional_str(user, "screen_name")
    return CustomerMessage(
        provider="x", channel="social", message_id=dm_id, sender=sender, recipient=us,
        ts=ts, kind="dm", text=optional_str(data, "text") or "",
        name=optional_str(user, "name") or screen_name,
        sender_ids={"screen_name": screen_name} if screen_name else {}, thread=sender,
    )  # fmt: skip


def _ms(value: Any, *, seconds: bool = False) -> int | None:
    """Epoch ms from an int or digit string (unix seconds if ``seconds``), else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        value = int(value)
    if type(value) is not int or not 0 < value < 10**16:
        return None
    return value * 1000 if seconds and value < 10**11 else value


def _created_at(value: Any) -> int | None:
    """Epoch ms of a tweet's ``created_at`` (``Wed Oct 10 20:19:24 +0000 2018``)."""
    try:
        when = parsedate_to_datetime(value) if isinstance(value, str) else None
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    if when is None:
        return None
    return _ms(int(when.replace(tzinfo=when.tzinfo or UTC).timestamp() * 1000))


def _obj(value: Any, what: str, optional: bool = False) -> dict[str, Any]:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{what} is not an object: {type(value).__name__}")
    return value


def _list(parent: dict[str, Any], key: str, required: bool = False) -> list[Any]:
    value = parent.get(key, None if required else [])
    if not isinstance(value, list):
        raise BadPayload(f"{key} is not a list: {type(value).__name__}")
    return value


def _opt_id(parent: dict[str, Any], key: str) -> str | None:
    """An id Meta or X wrote as a string (or, in older payloads, a number)."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    if type(value) is int and 0 <= value < 2**64:
        return str(value)
    if not isinstance(value, str):
        raise BadPayload(f"{key} is not an id: {type(value).__name__}")
    return value


def _id(parent: dict[str, Any], key: str) -> str:
    value = _opt_id(parent, key)
    if value is None:
        raise BadPayload(f"{key} is missing")
    return value
