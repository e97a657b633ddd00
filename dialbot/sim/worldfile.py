"""Load and validate a simulator world file (spec/formats.md §4).

A world file is edited by hand, so every mistake is refused before anything
starts: an unknown key, a wrong type or an impossible value raises
`WorldError` naming the file, the key path (``sps[0].services[1].behaviour
.charge_factor``), the line where the YAML parser saw it, and the reason.

The YAML is composed into nodes first (not loaded straight to dicts) so that
line numbers survive and duplicate keys - which PyYAML would silently
overwrite - are refused too.

Optional keys beyond the spec: top-level ``seed`` (randomness of the
network), ``night_s`` (length of a simulated night), ``order_notices``
(whether the carrier sends 订购提醒 after an order, default true),
``sms_validity_s`` (how long the SMSC holds what a SIM off the network cannot
receive: SMS, WAP PUSH, MMS notifications; default a day), and
``bank.region`` / a service's ``region``, ``calendar`` (``time_scale``,
``start``, ``reminder_days``: the simulated month, see `dialbot.sim.clock`)
and a monthly service's ``trial_days`` (a free trial, 首月免费). A slot may override
``balance_fen`` as well as ``dialect`` and ``faults``.

WAP (spec/channels.md §6): a service may say ``channel: wap`` with a ``url``;
its ``subscribe`` is the order link's text, and ``access``/``cancel`` become
optional (an SMS cancel keyword if the SP has one). Faults add ``http_error``
(a module error 601..604 on every HTTP request) and ``bearer_drop_after``
(the data bearer drops after that many requests).

Voice lines (spec/channels.md §6): ``channel: ivr`` with ``billing:
per_minute``, no ``subscribe``/``cancel``, ``use`` as DTMF keys; their
behaviour knobs add ``hangs_up_after_s`` (when the line hangs up by itself).
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dialbot.carrier import CarrierProfile
from dialbot.errors import ConfigError, WorldError
from dialbot.sim.clock import CARRIER_ZONE, CalendarSettings
from dialbot.sim.dialects import dialect_names
from dialbot.sim.identity import identity, luhn_digit
from dialbot.sim.world import Behaviour, Faults, Service, SimCard, Sp, World

__all__ = ["DIALECTS", "demo_world_path", "load_world", "luhn_digit"]

DIALECTS = tuple(dialect_names())
MAX_MODEMS = 4096
PROMPT_PARTS = ("price", "sp_name", "hotline")
# A keyword equal to a confirmation token could never be told apart from a confirmation.
RESERVED_KEYWORDS = {"Y", "是"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DTMF = re.compile(r"[0-9*#A-D]{1,32}")


def demo_world_path() -> Path:
    """The demo world shipped inside the package."""
    return Path(str(resources.files("dialbot.sim").joinpath("demo_world.yaml")))


def load_world(path: Path) -> World:
    """Parse and validate a world file; raise WorldError on any mistake."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise WorldError(file, "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WorldError(file, "", f"not UTF-8: {exc}") from exc
    data, lines = _compose(text, file)
    return _Validator(file, lines).world(data)


# --- YAML with line numbers -------------------------------------------------


def _compose(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """YAML text to plain Python, plus the 1-based line of every key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise WorldError(file, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if node is None:
        raise WorldError(file, "", "empty world file")
    lines: dict[str, int] = {}
    loader = yaml.SafeLoader("")
    return _plain(node, "", lines, loader, file), lines


def _plain(node: yaml.Node, path: str, lines: dict[str, int], loader: Any, file: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            sub = f"{path}.{key}" if path else str(key)
            try:
                hash(key)
            except TypeError:
                raise WorldError(
                    file, f"{path or '(top)'} (line {key_node.start_mark.line + 1})", "bad key"
                ) from None
            if key in out:
                raise WorldError(
                    file, f"{sub} (line {key_node.start_mark.line + 1})", "duplicate key"
                )
            out[key] = _plain(value_node, sub, lines, loader, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _plain(item, f"{path}[{i}]", lines, loader, file) for i, item in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise WorldError(file, f"{path} (line {lines[path]})", f"bad value: {exc}") from exc


# --- validation ---------------------------------------------------------------


class _Validator:
    """Turns the plain YAML data into a World, one checker per kind of value."""

    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file = file
        self.lines = lines

    def fail(self, path: str, reason: str) -> WorldError:
        line = self.lines.get(path)
        if line is None:  # a missing key: point at its parent
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            line = self.lines.get(parent)
        where = f"{path} (line {line})" if line is not None else path
        return WorldError(self.file, where, reason)

    # scalar checkers ----------------------------------------------------------

    def table(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                sub = f"{path}.{key}" if path else str(key)
                raise self.fail(sub, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def integer(self, value: Any, path: str, minimum: int | None = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, not {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {value}")
        return value

    def number(self, value: Any, path: str, low: float, high: float | None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, not {_kind(value)}")
        if value < low or (high is not None and value > high):
            span = f"{low}..{high}" if high is not None else f">= {low}"
            raise self.fail(path, f"must be in {span}, got {value}")
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, not {_kind(value)}")
        return value

    def text(self, value: Any, path: str, digits: bool = False) -> str:
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, int | float) else ""
            raise self.fail(path, f"must be a string, not {_kind(value)}{hint}")
        if not value.strip():
            raise self.fail(path, "must not be empty")
        if _CONTROL.search(value):
            raise self.fail(path, "contains a control character")
        if digits and not value.isdigit():
            raise self.fail(path, f"must be digits only, got {value!r}")
        return value

    def keyword(self, value: Any, path: str) -> str:
        word = self.text(value, path)
        if any(ch.isspace() for ch in word):
            raise self.fail(path, f"keyword must not contain spaces, got {word!r}")
        if word.upper() in RESERVED_KEYWORDS:
            raise self.fail(path, f"keyword {word!r} is a confirmation token")
        return word

    def required(self, table: dict[str, Any], key: str, path: str) -> Any:
        if table.get(key) is None:
            raise self.fail(f"{path}.{key}", "required key missing")
        return table[key]

    # structure ----------------------------------------------------------------

    def world(self, data: Any) -> World:
        if not isinstance(data, dict):
            raise self.fail("", "the world must be a mapping")
        top = self.table(
            data,
            "",
            {"carrier", "bank", "sps", "seed", "night_s", "order_notices", "calendar",
             "sms_validity_s"},
        )  # fmt: skip
        carrier = self.carrier(top.get("carrier"))
        seed = self.integer(top.get("seed", 0), "seed", minimum=None)
        night_s = self.number(top.get("night_s", 3600.0), "night_s", 0.0, None)
        if night_s <= 0:
            raise self.fail("night_s", "must be > 0")
        order_notices = self.boolean(top.get("order_notices", True), "order_notices")
        validity_s = self.number(top.get("sms_validity_s", 86400.0), "sms_validity_s", 0.0, None)
        if validity_s <= 0:
            raise self.fail("sms_validity_s", "must be > 0")
        bank = self.table(self.required(top, "bank", ""), "bank", _BANK_KEYS)
        sims = self.sims(bank)
        raw_sps = self.required(top, "sps", "")
        if not isinstance(raw_sps, list):
            raise self.fail("sps", "must be a list")
        sps = tuple(self.sp(item, f"sps[{i}]", carrier) for i, item in enumerate(raw_sps))
        self.unique_sps(sps)
        region = bank.get("region")
        return World(
            carrier=carrier,
            bank_name=self.text(bank["name"], "bank.name"),
            bank_region=self.text(region, "bank.region") if region is not None else None,
            sims=sims,
            sps=sps,
            night_s=night_s,
            seed=seed,
            source=self.file,
            extra={"order_notices": order_notices},
            calendar=self.calendar(top["calendar"]) if "calendar" in top else None,
            sms_validity_s=validity_s,
        )

    def calendar(self, value: Any) -> CalendarSettings:
        """The simulated calendar (month boundaries, trials, reminders) and its time scale."""
        raw = self.table(value, "calendar", {"time_scale", "start", "reminder_days"})
        scale = self.number(raw.get("time_scale", 1.0), "calendar.time_scale", 0.0, None)
        if scale <= 0:
            raise self.fail("calendar.time_scale", "must be > 0")
        start = raw.get("start")
        if start is not None:
            if isinstance(start, str):
                try:
                    start = datetime.fromisoformat(start)
                except ValueError:
                    raise self.fail("calendar.start", f"not an ISO date-time: {start!r}") from None
            if not isinstance(start, datetime) or start.tzinfo is None:
                raise self.fail("calendar.start", "must be an ISO date-time with a UTC offset")
            start = start.astimezone(CARRIER_ZONE)
        lead = self.number(raw.get("reminder_days", 3.0), "calendar.reminder_days", 0.0, None)
        return CalendarSettings(time_scale=scale, start=start, reminder_days=lead)

    def carrier(self, value: Any) -> CarrierProfile:
        try:
            return CarrierProfile.from_mapping(value, self.file, "carrier")
        except ConfigError as exc:
            raise self.fail(exc.where, exc.reason) from exc

    def sims(self, bank: dict[str, Any]) -> tuple[SimCard, ...]:
        name = self.text(self.required(bank, "name", "bank"), "bank.name")
        modems = self.integer(self.required(bank, "modems", "bank"), "bank.modems", minimum=1)
        if modems > MAX_MODEMS:
            raise self.fail("bank.modems", f"at most {MAX_MODEMS} modems per bank, got {modems}")
        balance = self.integer(bank.get("balance_fen", 10000), "bank.balance_fen", minimum=None)
        dialect = self.dialect(bank.get("dialect", "generic"), "bank.dialect")
        slots = self.slots(bank.get("slots"), modems)
        cards = []
        for slot in range(1, modems + 1):
            override = slots.get(slot, {})
            path = f"bank.slots.{slot}"
            cards.append(
                SimCard(
                    slot=slot,
                    dialect=self.dialect(override.get("dialect", dialect), f"{path}.dialect"),
                    faults=self.faults(override.get("faults"), f"{path}.faults"),
                    balance_fen=self.integer(
                        override.get("balance_fen", balance), f"{path}.balance_fen", minimum=None
                    ),
                    **identity(name, slot, override.get("dialect", dialect)),
                )
            )
        return tuple(cards)

    def slots(self, value: Any, modems: int) -> dict[int, dict[str, Any]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("bank.slots", "must be a mapping of slot number to overrides")
        out = {}
        for key, override in value.items():
            path = f"bank.slots.{key}"
            if isinstance(key, bool) or not isinstance(key, int):
                raise self.fail(path, f"slot must be an integer, not {_kind(key)}")
            if not 1 <= key <= modems:
                raise self.fail(path, f"slot must be in 1..{modems} (bank.modems)")
            out[key] = self.table(override, path, {"dialect", "faults", "balance_fen"})
        return out

    def dialect(self, value: Any, path: str) -> str:
        name = self.text(value, path)
        if name not in DIALECTS:
            raise self.fail(path, f"unknown dialect {name!r} (known: {', '.join(DIALECTS)})")
        return name

    def faults(self, value: Any, path: str) -> Faults:
        raw = self.table(value, path, _FAULT_KEYS)
        lost = raw.get("network_lost")
        if lost is not None:
            if not isinstance(lost, list) or len(lost) != 2:
                raise self.fail(f"{path}.network_lost", "must be [start_s, duration_s]")
            start = self.number(lost[0], f"{path}.network_lost[0]", 0.0, None)
            span = self.number(lost[1], f"{path}.network_lost[1]", 0.0, None)
            if span <= 0:
                raise self.fail(f"{path}.network_lost[1]", "duration must be > 0")
            lost = (start, span)
        stop_n = raw.get("stop_after_commands")
        stop_s = raw.get("stop_after_s")
        return Faults(
            stop_after_commands=None
            if stop_n is None
            else self.integer(stop_n, f"{path}.stop_after_commands", minimum=1),
            stop_after_s=None
            if stop_s is None
            else self.number(stop_s, f"{path}.stop_after_s", 0.0, None),
            garbage_rate=self.number(raw.get("garbage_rate", 0.0), f"{path}.garbage_rate", 0, 1),
            cms_error_rate=self.number(
                raw.get("cms_error_rate", 0.0), f"{path}.cms_error_rate", 0, 1
            ),
            sim_missing=self.boolean(raw.get("sim_missing", False), f"{path}.sim_missing"),
            network_lost=lost,
            response_delay_ms=self.integer(
                raw.get("response_delay_ms", 0), f"{path}.response_delay_ms"
            ),
            http_error=self.http_error(raw.get("http_error"), f"{path}.http_error"),
            bearer_drop_after=None
            if raw.get("bearer_drop_after") is None
            else self.integer(raw["bearer_drop_after"], f"{path}.bearer_drop_after", minimum=0),
        )

    def http_error(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        code = self.integer(value, path)
        if not 601 <= code <= 604:
            raise self.fail(path, f"must be a module error 601..604, got {code}")
        return code

    def sp(self, value: Any, path: str, carrier: CarrierProfile) -> Sp:
        raw = self.table(value, path, {"code", "name", "hotline", "services"})
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        code = self.text(self.required(raw, "code", path), f"{path}.code")
        name = self.text(self.required(raw, "name", path), f"{path}.name")
        hotline = raw.get("hotline")
        if hotline is not None:
            hotline = self.text(hotline, f"{path}.hotline")
            if not re.fullmatch(r"[0-9-]+", hotline):
                raise self.fail(f"{path}.hotline", f"must be a phone number, got {hotline!r}")
        services = self.required(raw, "services", path)
        if not isinstance(services, list) or not services:
            raise self.fail(f"{path}.services", "must be a non-empty list")
        built = tuple(
            self.service(item, f"{path}.services[{i}]", carrier) for i, item in enumerate(services)
        )
        seen: dict[str, int] = {}
        for i, svc in enumerate(built):
            if svc.code in seen:
                raise self.fail(
                    f"{path}.services[{i}].code",
                    f"duplicate service code {svc.code!r} (also services[{seen[svc.code]}])",
                )
            seen[svc.code] = i
        return Sp(code=code, name=name, hotline=hotline, services=built)

    def service(self, value: Any, path: str, carrier: CarrierProfile) -> Service:
        raw = self.table(value, path, _SERVICE_KEYS)
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        channel = self.text(raw.get("channel", "sms"), f"{path}.channel")
        if channel not in SIM_CHANNELS:
            raise self.fail(
                f"{path}.channel", f"must be one of {', '.join(SIM_CHANNELS)}, got {channel!r}"
            )
        billing = self.text(self.required(raw, "billing", path), f"{path}.billing")
        allowed = ("per_minute",) if channel == "ivr" else ("monthly", "per_use")
        if billing not in allowed:
            raise self.fail(f"{path}.billing", f"must be {' or '.join(allowed)}, got {billing!r}")
        wap = channel == "wap"
        cancel = raw.get("cancel")
        if billing == "monthly" and not wap:
            cancel = self.keyword(self.required(raw, "cancel", path), f"{path}.cancel")
        elif cancel is not None:
            if billing != "monthly":
                raise self.fail(f"{path}.cancel", "only monthly services have a cancel keyword")
            cancel = self.keyword(cancel, f"{path}.cancel")
        access = ""
        if not wap or raw.get("access") is not None:
            access = self.text(self.required(raw, "access", path), f"{path}.access", digits=True)
        if access == carrier.service_number:
            raise self.fail(f"{path}.access", "is the carrier's service number")
        url = self.wap_url(self.required(raw, "url", path), f"{path}.url") if wap else None
        if url is None and raw.get("url") is not None:
            raise self.fail(f"{path}.url", "only wap services have a url")
        use = raw.get("use")
        region = raw.get("region")
        if channel == "ivr":  # a voice line: no keywords; `use` are DTMF keys of its menu
            if raw.get("subscribe") is not None:
                raise self.fail(f"{path}.subscribe", "an ivr line has no subscribe keyword")
            subscribe = ""
            use = self.dtmf(use, f"{path}.use") if use is not None else None
        else:  # a WAP order is a link: its text, not a keyword
            subscribe = self.required(raw, "subscribe", path)
            subscribe = (
                self.text(subscribe, f"{path}.subscribe")
                if wap
                else self.keyword(subscribe, f"{path}.subscribe")
            )
            use = self.keyword(use, f"{path}.use") if use is not None else None
        trial = self.integer(raw.get("trial_days", 0), f"{path}.trial_days")
        if trial and billing != "monthly":
            raise self.fail(f"{path}.trial_days", "only monthly services have a free trial")
        return Service(
            code=self.text(self.required(raw, "code", path), f"{path}.code"),
            name=self.text(self.required(raw, "name", path), f"{path}.name"),
            access=access,
            billing=billing,
            price_fen=self.integer(self.required(raw, "price_fen", path), f"{path}.price_fen"),
            subscribe=subscribe,
            cancel=cancel,
            use=use,
            region=self.text(region, f"{path}.region") if region is not None else None,
            behaviour=self.behaviour(raw.get("behaviour"), f"{path}.behaviour"),
            channel=channel,
            url=url,
            trial_days=trial,
        )

    def dtmf(self, value: Any, path: str) -> str:
        keys = self.text(value, path)
        if not _DTMF.fullmatch(keys):
            raise self.fail(path, f"must be DTMF keys (0-9 * # A-D), got {keys!r}")
        return keys

    def wap_url(self, value: Any, path: str) -> str:
        url = self.text(value, path)
        if not re.fullmatch(r"http://[a-z0-9.-]+(?::\d+)?(?:/[\x21-\x7e]*)?", url):
            raise self.fail(path, f"must be an http:// URL without spaces or quotes, got {url!r}")
        if '"' in url:
            raise self.fail(path, "must not contain a double quote")
        return url

    def behaviour(self, value: Any, path: str) -> Behaviour:
        raw = self.table(value, path, _BEHAVIOUR_KEYS)
        d = Behaviour()

        def flag(key: str) -> bool:
            return self.boolean(raw.get(key, getattr(d, key)), f"{path}.{key}")

        def count(key: str) -> int:
            return self.integer(raw.get(key, getattr(d, key)), f"{path}.{key}")

        def rate(key: str) -> float:
            return self.number(raw.get(key, getattr(d, key)), f"{path}.{key}", 0.0, 1.0)

        prompt_price = raw.get("prompt_price_fen")
        if prompt_price is not None:
            prompt_price = self.integer(prompt_price, f"{path}.prompt_price_fen")
        return Behaviour(
            confirm_prompt=flag("confirm_prompt"),
            charges_without_confirm=flag("charges_without_confirm"),
            prompt_price_fen=prompt_price,
            prompt_omits=self.omits(raw.get("prompt_omits"), f"{path}.prompt_omits"),
            charge_factor=self.number(
                raw.get("charge_factor", 1.0), f"{path}.charge_factor", 0.0, 100.0
            ),
            double_charge=flag("double_charge"),
            cancel_works=flag("cancel_works"),
            charge_after_cancel=flag("charge_after_cancel"),
            charge_after_cancel_delay_ms=count("charge_after_cancel_delay_ms"),
            messages_after_cancel=count("messages_after_cancel"),
            spam_per_night=count("spam_per_night"),
            unsolicited_subscribe=rate("unsolicited_subscribe"),
            responds=rate("responds"),
            delivers_content=flag("delivers_content"),
            latency_ms=self.latency(raw.get("latency_ms"), f"{path}.latency_ms"),
            subscribe_on_visit=flag("subscribe_on_visit"),
            auto_redirect_to_order=flag("auto_redirect_to_order"),
            misleading_link=None
            if raw.get("misleading_link") is None
            else self.text(raw["misleading_link"], f"{path}.misleading_link"),
            skips_carrier_confirm=flag("skips_carrier_confirm"),
            page_omits_price=flag("page_omits_price"),
            wap_push_per_night=count("wap_push_per_night"),
            **self.ivr_behaviour(raw, path, d),
            mms_empty=flag("mms_empty"),
            mms_after_cancel=count("mms_after_cancel"),
            renews_without_reminder=flag("renews_without_reminder"),
            trial_converts_silently=flag("trial_converts_silently"),
            late_charge_s=self.number(
                raw.get("late_charge_s", 0.0), f"{path}.late_charge_s", 0.0, None
            ),
        )

    def ivr_behaviour(self, raw: dict[str, Any], path: str, d: Behaviour) -> dict[str, Any]:
        """The voice-line knobs of spec/channels.md §6 (plus `hangs_up_after_s`)."""

        def seconds(key: str) -> float:
            return self.number(raw.get(key, getattr(d, key)), f"{path}.{key}", 0.0, None)

        trap = raw.get("subscribe_on_key")
        return {
            "answer_after_s": seconds("answer_after_s"),
            "hangs_up_after_s": seconds("hangs_up_after_s"),
            "holds_after_hangup_s": seconds("holds_after_hangup_s"),
            "bill_extra_minutes": self.integer(
                raw.get("bill_extra_minutes", 0), f"{path}.bill_extra_minutes"
            ),
            "bill_from_dial": self.boolean(
                raw.get("bill_from_dial", False), f"{path}.bill_from_dial"
            ),
            "subscribe_on_key": None
            if trap is None
            else self.dtmf(trap, f"{path}.subscribe_on_key"),
            "subscribe_on_key_fen": self.integer(
                raw.get("subscribe_on_key_fen", d.subscribe_on_key_fen),
                f"{path}.subscribe_on_key_fen",
            ),
        }

    def omits(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(path, "must be a list")
        for i, item in enumerate(value):
            if item not in PROMPT_PARTS:
                raise self.fail(
                    f"{path}[{i}]", f"must be one of {', '.join(PROMPT_PARTS)}, got {item!r}"
                )
        return tuple(value)

    def latency(self, value: Any, path: str) -> tuple[int, int]:
        if value is None:
            return Behaviour().latency_ms
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail(path, "must be [min_ms, max_ms]")
        low = self.integer(value[0], f"{path}[0]")
        high = self.integer(value[1], f"{path}[1]")
        if low > high:
            raise self.fail(path, f"min {low} > max {high}")
        return (low, high)

    def unique_sps(self, sps: tuple[Sp, ...]) -> None:
        """SP codes are unique; an access number + keyword reaches exactly one service."""
        codes: dict[str, int] = {}
        routes: dict[tuple[str, str], str] = {}
        for i, sp in enumerate(sps):
            if sp.code in codes:
                raise self.fail(
                    f"sps[{i}].code", f"duplicate SP code {sp.code!r} (also sps[{codes[sp.code]}])"
                )
            codes[sp.code] = i
            for j, svc in enumerate(sp.services):
                for key in ("subscribe", "cancel", "use"):
                    word = getattr(svc, key)
                    if not word or not svc.access or svc.channel == "ivr":
                        continue
                    if key == "subscribe" and svc.url:
                        continue
                        continue
                    route = (svc.access, word.upper())
                    here = f"sps[{i}].services[{j}].{key}"
                    if route in routes:
                        raise self.fail(
                            here,
                            f"access number {svc.access} + keyword {word!r} already used by "
                            f"{routes[route]}",
                        )
                    routes[route] = here


_BANK_KEYS = {"name", "modems", "balance_fen", "dialect", "slots", "region"}
_FAULT_KEYS = {f for f in Faults.__dataclass_fields__}
_SERVICE_KEYS = {
    "code",
    "name",
    "access",
    "billing",
    "price_fen",
    "subscribe",
    "cancel",
    "use",
    "region",
    "behaviour",
    "channel",
    "url",
    "trial_days",
}
# Channels the simulated network serves (spec/channels.md §1 lists sms, wap, mms, ivr).
SIM_CHANNELS = ("sms", "wap", "ivr", "mms")
_BEHAVIOUR_KEYS = {f for f in Behaviour.__dataclass_fields__}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a " + type(value).__name__
    )
