"""The simulator world (spec/formats.md §4): typed model.

`load_world()` (in `dialbot.sim.worldfile`) builds these from YAML with
validation; everything else in the simulator reads only these types.
The `Behaviour` blocks are ground truth: nothing outside the network side of
the simulator may read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialbot.carrier import CarrierProfile
from dialbot.sim.clock import CalendarSettings


@dataclass(frozen=True)
class Faults:
    """Per-modem faults; defaults = a healthy modem."""

    stop_after_commands: int | None = None
    stop_after_s: float | None = None
    garbage_rate: float = 0.0
    cms_error_rate: float = 0.0
    sim_missing: bool = False
    network_lost: tuple[float, float] | None = None  # (start_s, duration_s)
    response_delay_ms: int = 0
    http_error: int | None = None  # every HTTP request fails with this module error (601-604)
    bearer_drop_after: int | None = None  # the data bearer drops after this many HTTP requests


@dataclass(frozen=True)
class SimCard:
    """One slot of the virtual bank: the modem's dialect and faults, the SIM's identity."""

    slot: int  # 1-based
    dialect: str
    faults: Faults
    msisdn: str
    imsi: str
    iccid: str
    imei: str
    balance_fen: int


@dataclass(frozen=True)
class Behaviour:
    """How a service really behaves; defaults = honest."""

    confirm_prompt: bool = True
    charges_without_confirm: bool = False
    prompt_price_fen: int | None = None
    prompt_omits: tuple[str, ...] = ()
    charge_factor: float = 1.0
    double_charge: bool = False
    cancel_works: bool = True
    charge_after_cancel: bool = False
    charge_after_cancel_delay_ms: int = 500
    messages_after_cancel: int = 0
    spam_per_night: int = 0
    unsolicited_subscribe: float = 0.0
    responds: float = 1.0
    delivers_content: bool = True
    latency_ms: tuple[int, int] = (20, 200)
    # The month after (calendar): an honest SP's renewal (and trial end) is preceded by the
    # carrier's reminder from 10086901; these knobs take it away or delay the charge.
    renews_without_reminder: bool = False
    trial_converts_silently: bool = False
    late_charge_s: float = 0.0  # simulated seconds after the month boundary / trial end
    # WAP (spec/channels.md §6)
    subscribe_on_visit: bool = False
    auto_redirect_to_order: bool = False
    misleading_link: str | None = None
    skips_carrier_confirm: bool = False
    page_omits_price: bool = False
    wap_push_per_night: int = 0
    # IVR lines (channel: ivr), spec/channels.md §6
    answer_after_s: float = 2.0
    hangs_up_after_s: float = 600.0  # the line hangs up by itself after this long
    bill_extra_minutes: int = 0
    bill_from_dial: bool = False
    holds_after_hangup_s: float = 0.0
    subscribe_on_key: str | None = None
    subscribe_on_key_fen: int = 500
    # MMS (spec/channels.md §6)
    mms_empty: bool = False  # notifications whose content is empty or fails to fetch
    mms_after_cancel: int = 0  # notifications sent after the cancellation


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    access: str
    billing: str  # "monthly" | "per_use" | "per_minute" (ivr)
    price_fen: int
    subscribe: str
    cancel: str | None
    use: str | None
    region: str | None
    behaviour: Behaviour
    trial_days: int = 0  # monthly only: free for this many simulated days, then paid
    channel: str = "sms"  # "sms" | "wap" | "mms" | "ivr" (spec/channels.md §1)
    url: str | None = None  # wap: the entry page behind the WAP gateway


@dataclass(frozen=True)
class Sp:
    code: str
    name: str
    hotline: str | None
    services: tuple[Service, ...]


@dataclass(frozen=True)
class World:
    carrier: CarrierProfile
    bank_name: str
    bank_region: str | None
    sims: tuple[SimCard, ...]
    sps: tuple[Sp, ...]
    night_s: float = 3600.0  # length of one simulated "night" for per-night behaviour
    seed: int = 0
    source: str = "<world>"
    extra: dict[str, object] = field(default_factory=dict)
    calendar: CalendarSettings | None = None  # None: subscriptions never renew
    # How long the SMSC keeps a message (SMS, WAP PUSH, MMS notification) for a SIM that is
    # off the network before dropping it, in network seconds (as `night_s`).
    sms_validity_s: float = 86400.0
