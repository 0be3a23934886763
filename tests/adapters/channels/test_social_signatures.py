"""X (Twitter) webhook security: the CRC answer and the body signature.

The CRC vector is X's own sample (the consumer secret and ``crc_token`` of the Python, PHP
and Node examples linked from https://docs.x.com/x-api/webhooks/quickstart), whose answer
other implementations pin as well.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels.signatures import SignatureError, check_x, x_crc_response

CONSUMER_SECRET = b"z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu"
CRC_TOKEN = "9b4507b3-9040-4669-9ca3-6b94edb50553"
RESPONSE_TOKEN = "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8="
BODY = b'{"for_user_id":"2244994945","favorite_events":[]}'
SIGNATURE = (
    "sha256=" + base64.b64encode(hmac.new(CONSUMER_SECRET, BODY, hashlib.sha256).digest()).decode()
)


def test_crc_response_reproduces_the_published_example() -> None:
    assert x_crc_response(CRC_TOKEN, CONSUMER_SECRET) == RESPONSE_TOKEN


def test_the_body_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    check_x(BODY, SIGNATURE, CONSUMER_SECRET)
    check_x(CRC_TOKEN.encode(), RESPONSE_TOKEN, CONSUMER_SECRET)  # the same construction


@pytest.mark.parametrize(
    ("body", "header", "reason"),
    [
        (BODY, None, "missing"),
        (BODY, "", "missing"),
        (BODY, SIGNATURE.removeprefix("sha256="), "must start with"),
        (BODY, "sha1=" + SIGNATURE[7:], "must start with"),
        (BODY + b" ", SIGNATURE, "does not match"),
        (BODY, SIGNATURE.upper().replace("SHA256=", "sha256="), "does not match"),
        (BODY, "sha256=" + hmac.new(CONSUMER_SECRET, BODY, hashlib.sha256).hexdigest(),
         "does not match"),
        (BODY, x_crc_response(BODY.decode(), b"another secret"), "does not match"),
        (BODY, SIGNATURE + "\u00e9", "does not match"),
    ],
)  # fmt: skip
def test_x_rejects_a_body_it_did_not_sign(body: bytes, header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        check_x(body, header, CONSUMER_SECRET)


@given(st.binary(max_size=200), st.text(max_size=80), st.binary(max_size=40))
def test_any_input_is_a_pass_or_a_signature_error(body: bytes, header: str, key: bytes) -> None:
    with contextlib.suppress(SignatureError):
        check_x(body, header, key)
    assert x_crc_response(header, key).startswith("sha256=")
