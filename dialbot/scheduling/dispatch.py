"""What the scheduler needs from the rest of dialbot, as narrow protocols.

The scheduler decides *what* runs *where*; running a probe, cleaning a SIM
and knowing the fleet belong to other parts. These protocols are the seams:

- :class:`Dispatcher` runs one planned probe (the flow runner, locally on
  this host's banks, or through a Celery queue per bank) and says how it
  ended. It must create the cleanup obligation before it orders, as always.
- :class:`Cleanup` discharges every pending cleanup obligation (the runner's
  cleanup, ``dialbot.flows.cleanup``); the scheduler calls it before a night
  starts or resumes, so no SIM carries a subscription into the next probe.
- :class:`FleetView` lists the ready SIMs and the modems' states.
- ``Runtime.hygiene`` checks SIMs (subscription list and balance; what
  nobody ordered is reported and cleaned) before their first probe of a
  night and after their last one, as a sweep does. Runtimes that cannot
  reach the modems from here leave it a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from dialbot.scheduling.planner import SimInfo

OutcomeStatus = Literal["done", "failed", "infra_failed"]


@dataclass(frozen=True)
class ProbeJob:
    """One planned probe handed to a dispatcher.

    ``follow_days`` is the schedule's horizon for the order the probe places (the
    month after: its obligation's follow_until, and keep_until for a `keep` probe);
    None leaves it to the probe host's ``[probe] follow_days``.
    """

    item_id: int
    plan_id: int
    service_id: int
    sp_code: str
    flow: str
    sim_id: int
    attempt: int = 1
    follow_days: float | None = None


@dataclass(frozen=True)
class ProbeOutcome:
    """How a probe ended.

    ``ordered`` says whether the order reached the SP: a probe that failed
    before ordering may be retried the same night; one that ordered never is.
    ``sim_unusable`` stops the rest of that SIM's night (modem or SIM died).
    """

    status: OutcomeStatus
    ordered: bool
    run_id: int | None = None
    error: str | None = None
    sim_unusable: bool = False


class Dispatcher(Protocol):
    def run(self, job: ProbeJob) -> ProbeOutcome:
        """Run the probe to its end (blocking) and report the outcome."""
        ...


class Cleanup(Protocol):
    def discharge_pending(self) -> int:
        """Discharge every pending cleanup obligation; return how many remain."""
        ...


class FleetView(Protocol):
    def ready_sims(self) -> list[SimInfo]:
        """SIMs that could probe tonight (the planner applies the balance floor)."""
        ...

    def modem_states(self) -> Mapping[str, int]:
        """How many modems are in each state (for metrics)."""
        ...

    def out_of_service(self) -> list[tuple[str, str]]:
        """(modem name, state) of every modem that cannot work (for alerts)."""
        ...


def no_hygiene(sim_ids: Collection[int]) -> int:
    """The hygiene hook of runtimes without one: checks nothing, finds nothing."""
    return 0


# Check the given SIMs (those of other hosts are ignored); returns how many findings it made.
HygieneHook = Callable[[Collection[int]], int]


@dataclass
class Runtime:
    """Everything a night needs from outside the scheduler, and how to let it go."""

    dispatcher: Dispatcher
    cleanup: Cleanup
    fleet: FleetView
    flow_billing: Mapping[str, tuple[str, ...]]
    flow_seconds: Mapping[str, float]
    close: Callable[[], None] = field(default=lambda: None)
    hygiene: HygieneHook = field(default=no_hygiene)


class NoCleanupNeeded:
    """A Cleanup for runtimes whose dispatcher never orders (dry runs)."""

    def discharge_pending(self) -> int:
        return 0
