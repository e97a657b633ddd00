"""Properties: an honest SP is never accused; a deterministic misbehaviour is always found."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dialbot.judge import judge

from .scenarios import HNYY, XHXH, XHXZ, Knobs, decline, monthly, per_use

MONTHLY = (
    XHXH,
    HNYY,
    replace(XHXH, price_fen=150, service_code="X2"),
    replace(HNYY, price_fen=1000, sp_hotline=""),
)
PER_USE = (
    XHXZ,
    replace(XHXZ, price_fen=10, service_code="X3"),
    replace(XHXZ, price_fen=200, service_code="X4"),
)

honest = st.builds(
    Knobs,
    notices=st.booleans(),
    style=st.integers(0, 11),
    mo_fee_fen=st.sampled_from([0, 0, 10, 20]),
    latency_s=st.floats(0.0, 50.0),
)


@settings(max_examples=150, deadline=None)
@given(
    knobs=honest, flow=st.sampled_from(["monthly", "per_use", "decline"]), pick=st.integers(0, 3)
)
def test_honest_run_never_yields_a_finding(knobs: Knobs, flow: str, pick: int) -> None:
    if flow == "per_use":
        run = per_use(knobs, PER_USE[pick % len(PER_USE)]).record()
    else:
        service = MONTHLY[pick % len(MONTHLY)] if flow == "monthly" else (MONTHLY + PER_USE)[pick]
        run = (monthly if flow == "monthly" else decline)(knobs, service).record()
    assert judge(run) == []


MISBEHAVIOURS = [
    ("monthly", {"charged_fen": 1000}, "OVERCHARGE"),
    ("monthly", {"charge_after_cancel": True}, "CHARGE_AFTER_CANCEL"),
    ("monthly", {"cancel_works": False}, "CANCEL_FAILED"),
    ("monthly", {"messages_after_cancel": 3}, "MESSAGE_AFTER_CANCEL"),
    ("monthly", {"delivers_content": False}, "CONTENT_NOT_DELIVERED"),
    ("monthly", {"prompt_price_fen": 200}, "PRICE_MISMATCH"),
    ("monthly", {"prompt_omits": ("hotline",)}, "PROMPT_INCOMPLETE"),
    ("monthly", {"confirm_prompt": False}, "UNCONFIRMED_SUBSCRIPTION"),
    ("per_use", {"double_charge": True}, "DUPLICATE_CHARGE"),
    ("per_use", {"responds": False}, "NO_RESPONSE"),
    ("decline", {"charges_without_confirm": True}, "UNCONFIRMED_CHARGE"),
    ("decline", {"confirm_prompt": False}, "UNCONFIRMED_CHARGE"),
]


@settings(max_examples=100, deadline=None)
@given(base=honest, case=st.sampled_from(MISBEHAVIOURS))
def test_misbehaviour_is_always_found(
    base: Knobs, case: tuple[str, dict[str, object], str]
) -> None:
    flow, change, code = case
    knobs = replace(base, **change)  # type: ignore[arg-type]
    if code == "DUPLICATE_CHARGE":
        knobs = replace(knobs, notices=True)  # one balance drop alone proves only an overcharge
    if code == "NO_RESPONSE" or code == "CONTENT_NOT_DELIVERED":
        knobs = replace(knobs, latency_s=min(knobs.latency_s, 30.0))
    build = {"monthly": monthly, "per_use": per_use, "decline": decline}[flow]
    assert code in {f.code for f in judge(build(knobs).record())}
