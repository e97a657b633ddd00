"""The modem driver: python-gsmmodem-new, fixed where a fleet needs it, one `Modem` per port."""

from dialbot.modem.driver import LinkState, Modem, ModemSettings
from dialbot.modem.health import Health, Identity
from dialbot.modem.inbox import IncomingMessage
from dialbot.modem.patched import FleetGsmModem
from dialbot.modem.safety import check_number, check_text, check_ussd
from dialbot.modem.trace import AtTrace

__all__ = [
    "AtTrace",
    "FleetGsmModem",
    "Health",
    "Identity",
    "IncomingMessage",
    "LinkState",
    "Modem",
    "ModemSettings",
    "check_number",
    "check_text",
    "check_ussd",
]
