"""Which flow probes a service of another channel than SMS (spec/channels.md §1).

Schedules name the SMS flows (`decline`, `monthly`, `per_use`); a night
planned from them must still run the right flow for a WAP or an MMS
service: a WAP service is browsed (`wap`), an MMS service is ordered and
declined by SMS like any other but its content flow fetches MMS (`mms`,
`mms_per_use`). Pure: the planner uses it without a database or a clock.
"""

from __future__ import annotations

DATA_CHANNELS = ("wap", "mms")  # probes that need a modem that browses (fleet field `data`)


def channel_flow(flow: str, channel: str, billing: str) -> str:
    """The flow that does for a service of `channel` what `flow` does for an SMS one."""
    if channel == "wap":
        return "wap"
    if channel == "mms" and flow in ("monthly", "per_use"):
        return "mms" if billing == "monthly" else "mms_per_use"
    return flow


MMS_FLOWS = ("mms", "mms_per_use")  # the standard MMS content flows: for MMS services only


def channel_flows(flows: list[str], channel: str, billing: str) -> list[str]:
    """`flows` translated for the channel, each once, in order (a scheduled MMS flow is
    dropped for a service of another channel)."""
    kept = (f for f in flows if channel == "mms" or f not in MMS_FLOWS)
    return list(dict.fromkeys(channel_flow(f, channel, billing) for f in kept))


def can_probe(channel: str, data: str | None) -> bool:
    """A WAP or MMS probe needs a modem known to browse (fleet field `data` "http"; the
    fleet learns it at inventory, before the SIM is ready)."""
    return channel not in DATA_CHANNELS or data == "http"
