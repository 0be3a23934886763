"""Provider webhook signatures, checked against the providers' published examples."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels import (
    SignatureError,
    check_meta,
    check_telegram,
    check_twilio,
    meta_signature,
    twilio_signature,
)

# Twilio's documented example (auth token 12345), in the order a form may carry it.
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = [
    ("Digits", "1234"), ("To", "+18005551212"), ("From", "+14158675309"),
    ("Caller", "+14158675309"), ("CallSid", "CA1234567890ABCDE"),
]  # fmt: skip
TWILIO_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_twilio_signature_reproduces_the_published_example() -> None:
    assert twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS) == TWILIO_SIGNATURE
    check_twilio("12345", TWILIO_URL, TWILIO_PARAMS, TWILIO_SIGNATURE)


def test_twilio_signs_each_distinct_value_of_a_repeated_parameter_sorted() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
              ("Digits", "1234"), ("Digits", "1234")]  # fmt: skip
    assert twilio_signature("12345", TWILIO_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize("url", ["https://mycompany.com:443/myapp.php?foo=1&bar=2", TWILIO_URL])
def test_twilio_signed_with_or_without_the_default_port_is_accepted(url: str) -> None:
    check_twilio("12345", url, TWILIO_PARAMS, TWILIO_SIGNATURE)


@pytest.mark.parametrize(
    ("token", "url", "params", "header", "reason"),
    [
        ("12345", TWILIO_URL, TWILIO_PARAMS, None, "missing"),
        ("12345", TWILIO_URL, TWILIO_PARAMS, "", "missing"),
        ("54321", TWILIO_URL, TWILIO_PARAMS, TWILIO_SIGNATURE, "does not match"),
        ("12345", TWILIO_URL + "&x=1", TWILIO_PARAMS, TWILIO_SIGNATURE, "does not match"),
        ("12345", TWILIO_URL, [*TWILIO_PARAMS[:-1], ("CallSid", "CA0")], TWILIO_SIGNATURE,
         "does not match"),
        ("12345", "https://mycompany.com:8443/myapp.php?foo=1&bar=2", TWILIO_PARAMS,
         TWILIO_SIGNATURE, "does not match"),
    ],
)  # fmt: skip
def test_twilio_rejects_what_it_did_not_sign(
    token: str, url: str, params: list[tuple[str, str]], header: str | None, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        check_twilio(token, url, params, header)


BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_meta_signature_is_hmac_sha256_of_the_raw_body() -> None:
    header = "sha256=" + hmac.new(b"app-secret", BODY, hashlib.sha256).hexdigest()
    assert meta_signature("app-secret", BODY) == header
    check_meta("app-secret", BODY, header)
    check_meta("app-secret", BODY, header.upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    ("body", "header", "reason"),
    [
        (BODY, None, "missing"),
        (BODY, "md5=abc", "must start with"),
        (BODY + b" ", meta_signature("app-secret", BODY), "does not match"),
        (BODY, meta_signature("other", BODY), "does not match"),
    ],
)
def test_meta_rejects_a_body_it_did_not_sign(body: bytes, header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        check_meta("app-secret", body, header)


def test_telegram_secret_token_must_equal_the_configured_secret() -> None:
    check_telegram("s3cret", "s3cret")
    for header, reason in ((None, "missing"), ("", "missing"), ("s3cre", "does not match")):
        with pytest.raises(SignatureError, match=reason):
            check_telegram("s3cret", header)


@given(st.binary(max_size=200), st.text(max_size=80), st.text(max_size=200))
def test_any_input_is_a_pass_or_a_signature_error(body: bytes, header: str, url: str) -> None:
    for check in (
        lambda: check_meta("k", body, header),
        lambda: check_telegram("k", header),
        lambda: check_twilio("k", url, [("Body", body.decode("latin-1"))], header),
    ):
        with contextlib.suppress(SignatureError):
            check()
