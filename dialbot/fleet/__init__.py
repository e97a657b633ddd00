"""The fleet: bank inventories, health and identity, leases, the carrier's services."""

from dialbot.fleet.fleet import Fleet, FleetModem, FleetSettings, NoModemAvailable, SimState
from dialbot.fleet.inventory import (
    Bank,
    ModemEntry,
    load_inventories,
    load_inventory,
    partition,
)
from dialbot.fleet.lease import Lease
from dialbot.fleet.services import (
    Balance,
    CancelAll,
    CarrierReplyError,
    CarrierServices,
    Evidence,
    Subscription,
    SubscriptionList,
)

__all__ = [
    "Balance",
    "Bank",
    "CancelAll",
    "CarrierReplyError",
    "CarrierServices",
    "Evidence",
    "Fleet",
    "FleetModem",
    "FleetSettings",
    "Lease",
    "ModemEntry",
    "NoModemAvailable",
    "SimState",
    "Subscription",
    "SubscriptionList",
    "load_inventories",
    "partition",
    "load_inventory",
]
