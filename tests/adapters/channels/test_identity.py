"""A person's phone number and email address, written one way on every channel."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.channels import IdentityError, email_address, phone_number


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 7700 900123", None, "+447700900123"),
        ("07700 900123", "GB", "+447700900123"),
        ("whatsapp:+447700900123", None, "+447700900123"),
        ("447700900123", None, "+447700900123"),  # a WhatsApp wa_id: digits, no plus
        ("(415) 555-0100", "US", "+14155550100"),
        ("tel:+1-415-555-0100", None, "+14155550100"),
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str | None, expected: str) -> None:
    assert phone_number(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"), [("07700 900123", None), ("hello", "GB"), ("+44 12", None), ("", "GB")]
)
def test_what_is_not_a_phone_number_is_refused_with_the_reason(
    raw: str, region: str | None
) -> None:
    with pytest.raises(IdentityError, match="phone number"):
        phone_number(raw, region)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("Ann Smith <Ann.Smith@Example.com>", "ann.smith@example.com"),
        ('"Smith, Ann" <ann+ticket-42@example.co.uk>', "ann+ticket-42@example.co.uk"),
    ],
)
def test_email_addresses_are_lower_cased_addresses(raw: str, expected: str) -> None:
    assert email_address(raw) == expected


@pytest.mark.parametrize("raw", ["", "ann", "ann@", "@example.com", "ann@localhost", "<>"])
def test_what_is_not_an_email_address_is_refused(raw: str) -> None:
    with pytest.raises(IdentityError, match="email address"):
        email_address(raw)


@given(st.text(max_size=60), st.sampled_from([None, "GB", "US", "DE"]))
def test_any_text_is_a_number_or_an_identity_error(raw: str, region: str | None) -> None:
    with contextlib.suppress(IdentityError):
        assert phone_number(raw, region).startswith("+")


@given(st.text(max_size=80))
def test_any_text_is_an_address_or_an_identity_error(raw: str) -> None:
    with contextlib.suppress(IdentityError):
        assert "@" in email_address(raw)
