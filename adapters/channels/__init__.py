"""Channels: what providers' webhooks carry, checked and normalised into engine inputs.

Pure functions only (no network, no log): a provider's request is verified here
(:mod:`.signatures`), read into customer messages (:mod:`.inbound`, one normaliser
module per provider) and its people are named the same way on every channel
(:mod:`.identity`), so the gateway that receives webhooks stays a thin shell.
"""

from .identity import IdentityError, email_address, phone_number
from .inbound import BadPayload, CustomerMessage, Ignored, Item
from .signatures import (
    SignatureError,
    check_meta,
    check_telegram,
    check_twilio,
    check_x,
    meta_signature,
    twilio_signature,
    x_crc_response,
)

__all__ = [
    "BadPayload",
    "CustomerMessage",
    "IdentityError",
    "Ignored",
    "Item",
    "SignatureError",
    "check_meta",
    "check_telegram",
    "check_twilio",
    "check_x",
    "email_address",
    "meta_signature",
    "phone_number",
    "twilio_signature",
    "x_crc_response",
]
