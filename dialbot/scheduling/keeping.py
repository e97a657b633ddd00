"""A `keep` probe in a night's plan: the last probe of its SIM, and never a second look.

A `keep` probe (docs/month-after.md) leaves its monthly subscription on until
the follow-up's horizon. Two rules follow, applied to the planner's plan
(the planner treats `keep` like any flow: it counts toward coverage per
(service, flow) pair):

- Any probe of an SP on that SIM afterwards cancels the kept subscription
  first (every cleaning but the follow-up's and the hygiene's fails closed),
  which would end the keeping the same night. So a SIM runs at most one keep
  probe a night, as its last probe: a lane's keep moves to the lane's end
  (the probes after it move up by its duration, so the lane ends no later);
  a second keep on the lane is left for another night.
- A kept subscription holds its SIM for the horizon (a SIM that owes a
  cleanup sits the nights out), so a keep probe is planned only for
  coverage (``due`` or ``ahead``), never as a second look (``risk``) or to
  break a rotation deadlock (``rotation``).

Moving a keep may put two probes of one SP next to each other on the SIM
(or first tonight after the SP it probed last); the later one is then left
for another night too, so a SIM still never probes one SP twice in a row.
What is left out stays due: a later night plans it. The probes that move
up may overlap other SIMs' probes of their SP a little more than the
planner estimated (per-SP concurrency is planned on estimates; the probes
of a SIM run one after the other in any case).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from dialbot.scheduling.planner import Plan, PlanItem

KEEP_FLOWS = frozenset({"keep"})
SECOND_LOOKS = ("risk", "rotation")  # reasons that are not coverage


def keep_last(plan: Plan, last_sp: Mapping[int, str | None] | None = None) -> Plan:
    """The plan with its keep probes last on their SIMs (see the module docstring);
    returns ``plan`` itself, changed in place. ``last_sp``: per SIM id, the SP it probed
    last before tonight (its first probe tonight must be of another)."""
    if not any(item.flow in KEEP_FLOWS for item in plan.items):
        return plan
    lanes: dict[int, list[PlanItem]] = {}
    for item in sorted(plan.items, key=lambda i: (i.start_s, i.seq)):
        lanes.setdefault(item.sim_id, []).append(item)
    kept: list[PlanItem] = []
    left = 0
    before = last_sp or {}
    for sim_id, items in lanes.items():
        lane, dropped = _lane(items, before.get(sim_id))
        kept += lane
        left += dropped
    looks = sum(1 for i in plan.items if i.flow in KEEP_FLOWS and i.reason in SECOND_LOOKS)
    kept.sort(key=lambda i: (i.start_s, i.seq))
    plan.items = [replace(item, seq=seq) for seq, item in enumerate(kept)]
    plan.busy_s = sum(item.duration_s for item in plan.items)
    plan.due_planned = sum(1 for item in plan.items if item.reason == "due")
    if left:
        plan.notes = [plan.coverage_note() if n.startswith("covers ") else n for n in plan.notes]
    if looks:
        plan.notes.append(
            f"{looks} keep probes not planned as a second look: a kept order holds its SIM "
            "until the horizon"
        )
    if left > looks:
        plan.notes.append(
            f"{left - looks} probes left for another night: a SIM runs one keep probe a "
            "night, after its other probes, never one SP twice in a row"
        )
    return plan


def _lane(items: list[PlanItem], last_sp: str | None) -> tuple[list[PlanItem], int]:
    """One SIM's probes in time order → (its probes with the keep last, how many left out)."""
    keep = next((i for i in items if i.flow in KEEP_FLOWS and i.reason not in SECOND_LOOKS), None)
    out: list[PlanItem] = []
    dropped = 0
    shift = 0.0  # the chosen keep's time, freed for the probes after it
    for item in items:
        if item.flow in KEEP_FLOWS:
            if item is keep:
                shift = item.duration_s
            else:
                dropped += 1
            continue
        moved = replace(item, start_s=item.start_s - shift) if shift else item
        if (out[-1].sp_code if out else last_sp) == moved.sp_code:
            dropped += 1  # one SP twice in a row once the keep has gone
            continue
        out.append(moved)
    if keep is not None:
        if (out[-1].sp_code if out else last_sp) == keep.sp_code:
            dropped += 1  # the SP it would follow: the keep waits for another night
        else:
            end = out[-1].start_s + out[-1].duration_s if out else keep.start_s
            out.append(replace(keep, start_s=max(keep.start_s, end)))
    return out, dropped
