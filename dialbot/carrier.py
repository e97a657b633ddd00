"""The carrier profile (spec/formats.md §3): how the carrier's own service
number answers. Shared by the fleet (which asks) and the simulator (which
answers), so both read the same defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from dialbot.errors import ConfigError

REGEX_KEYS = frozenset(
    {
        "balance_reply",
        "subscriptions_none",
        "subscriptions_item",
        "subscriptions_reply",
        "notices",
        "detail_reply",
        "detail_item",
        "wap_confirm",
    }
)
INT_KEYS = frozenset({"mo_sms_fee_fen", "data_fee_fen_per_kb", "call_fee_fen_per_min"})
NUMBER_KEYS = frozenset({"billing_minute_s"})


def _positive_number(value: Any, file: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(file, where, "must be a number greater than 0 (seconds)")
    return float(value)


@dataclass(frozen=True)
class CarrierProfile:
    """China Mobile's conventions by default; every field can be overridden.

    Two keys exist because the carrier also writes on its own: right after an
    order it sends an order notice (`订购提醒：您已成功订购由{SP}提供的{业务}，
    10元/月（由中国移动代收费）…`) from a number under the service number, which
    may arrive just before the answer to a query, and whose `…（…）` the item
    regex would read as a listed service. So:

    - `subscriptions_reply` (regex): the reply *is* the subscription list
      (`您已订购以下业务：…`); only such a reply, or one matching
      `subscriptions_none`, is taken as the answer to `subscriptions_query`,
      and items are only read from it;
    - `notices` (regex): a notice the carrier sends by itself (order, charge
      reminders); never taken as the answer to any query or to `cancel_all`
      (it is still recorded as evidence).

    Itemized charges (详单): where the carrier answers a detail query,
    `detail_query` is its command (empty: the carrier offers none, and the
    judge falls back to balance deltas); `detail_reply` (regex) tells the
    answer from any other message, and `detail_item` (regex with the groups
    `at` `YYYY-MM-DD HH:MM:SS` in the carrier's zone, `sp`, `service`,
    `yuan`) reads one charge line of it.
    """

    service_number: str = "10086"
    balance_query: str = "CXYE"
    balance_reply: str = r"余额(?:为|是|:|：)?\s*(?P<yuan>-?\d+(?:\.\d{1,2})?)\s*元"
    subscriptions_query: str = "0000"
    subscriptions_none: str = r"没有订购|暂无(?:已)?订购|未订购任何|无订购记录"
    subscriptions_item: str = r"(?P<service>[^、；;：:，,（(]+)（(?P<sp>[^）)]+)）"
    subscriptions_reply: str = r"已订购以下|订购了以下|以下业务|订购的业务(?:有|如下)"
    cancel_all: str = "00000"
    notices: str = r"(?:订购|点播|扣费|计费|消费)提醒"
    confirm_reply: str = "Y"
    mo_sms_fee_fen: int = 0
    detail_query: str = ""
    detail_reply: str = r"消费明细"
    detail_item: str = (
        r"(?P<at>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})[，,](?P<sp>[^，,；;]+)[，,]"
        r"(?P<service>[^，,；;]+)[，,](?P<yuan>\d+(?:\.\d{1,2})?)元"
    )
    # Data (spec/channels.md §2): WAP goes through the carrier's gateway on this APN.
    apn: str = "cmwap"
    wap_proxy: str = "10.0.0.172:80"
    wap_confirm: str = r"二次确认"
    data_fee_fen_per_kb: int = 0
    # Voice (spec/channels.md §6): airtime is the carrier's, never an SP charge.
    call_fee_fen_per_min: int = 0  # carrier airtime per started minute, never an SP charge
    billing_minute_s: float = 60.0  # a simulated network may shorten it; time_scale never does
    mmsc: str = "http://mmsc.monternet.com"  # the MMS centre behind the WAP gateway

    @property
    def proxy_host_port(self) -> tuple[str, int]:
        """`wap_proxy` split into host and port (port 80 when none is given)."""
        host, _, port = self.wap_proxy.rpartition(":")
        if not host or not port.isdigit():
            return self.wap_proxy, 80
        return host, int(port)

    @property
    def balance_by_ussd(self) -> bool:
        return self.balance_query.startswith("ussd:")

    @property
    def ussd_code(self) -> str:
        """The USSD string when the balance is asked by USSD (e.g. ``*125#``)."""
        return self.balance_query.removeprefix("ussd:")

    @classmethod
    def from_mapping(cls, data: Any, file: str, where: str = "carrier") -> CarrierProfile:
        """Build from a TOML/YAML table; unknown keys and wrong types name file and key."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(file, where, "must be a table")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(file, f"{where}.{key}", "unknown key")
            if key in NUMBER_KEYS:
                values[key] = _positive_number(value, file, f"{where}.{key}")
                continue
            want = int if key in INT_KEYS else str
            if want is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(file, f"{where}.{key}", "must be an integer (fen)")
            if want is int and value < 0:
                raise ConfigError(file, f"{where}.{key}", "must not be negative")
            if want is str and not isinstance(value, str):
                raise ConfigError(file, f"{where}.{key}", "must be a string")
            if key in REGEX_KEYS:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ConfigError(file, f"{where}.{key}", f"not a valid regex: {exc}") from exc
            values[key] = value
        return cls(**values)
