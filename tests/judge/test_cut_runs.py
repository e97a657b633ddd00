"""A cut run (its process died mid-run) is judged only on what was seen (SEEN_RULES).

The same evidence judged whole and cut: what needs only what was seen (a
charge before any confirmation, spam, messages after an acknowledged
cancel) stays; what needs a whole watched window (no response, content not
delivered, a cancel not acknowledged in time) is never found in a cut run,
nor what weighs all of a finished run's charges (overcharge, duplicate).
"""

from __future__ import annotations

import pytest

from dialbot.judge.rules import RULES, SEEN_RULES

from .scenarios import Knobs, codes, decline, monthly, per_use, replace


@pytest.mark.parametrize(
    ("flow", "knobs", "kept"),
    [
        (decline, Knobs(charges_without_confirm=True), {"UNCONFIRMED_CHARGE"}),
        (monthly, Knobs(confirm_prompt=False), {"UNCONFIRMED_CHARGE", "UNCONFIRMED_SUBSCRIPTION"}),
        (monthly, Knobs(charge_after_cancel=True), {"CHARGE_AFTER_CANCEL"}),
        (monthly, Knobs(messages_after_cancel=1), {"MESSAGE_AFTER_CANCEL"}),
        (per_use, Knobs(responds=False), set()),  # NO_RESPONSE needs the whole window
        (monthly, Knobs(delivers_content=False), set()),  # CONTENT_NOT_DELIVERED too
        (monthly, Knobs(cancel_works=False), set()),  # CANCEL_FAILED too
        (monthly, Knobs(charged_fen=1000), set()),  # OVERCHARGE weighs all the charges
        (per_use, Knobs(double_charge=True), set()),
    ],
)
def test_cut_runs_keep_only_what_was_seen(flow: object, knobs: Knobs, kept: set[str]) -> None:
    whole = flow(knobs).record()  # type: ignore[operator]
    assert kept <= codes(whole)  # judged whole, the run finds at least these
    assert codes(replace(whole, cut=True)) == kept


def test_seen_rules_are_rules() -> None:
    assert SEEN_RULES <= set(RULES)
    assert not SEEN_RULES & {"NO_RESPONSE", "CONTENT_NOT_DELIVERED", "CANCEL_FAILED"}
