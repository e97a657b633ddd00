"""The WAP steps of the flow language (open, explore, order, use) on a leased modem.

A WAP probe browses like a subscriber (spec/channels.md §6): it opens the
service's entry page, records every redirect without following it blindly,
looks at each other link once, finds the order link by its text, and on the
carrier's confirmation page confirms or declines. Whenever a page the robot
did not ask to order from lands on the carrier's confirmation page, the
robot declines there (the abuse is recorded, the SIM is not subscribed).
What the robot did is kept as judge `Action`s, each pointing at the `http`
event of the click: the judge measures pages, balances and lists against it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dialbot.flows.browse import Browser, Chain, Link, Page
from dialbot.flows.model import Explore, Open, Order, Use, WapStep
from dialbot.flows.record import now
from dialbot.judge.model import Action, ActionKind

if TYPE_CHECKING:
    from dialbot.flows.steps import StepRunner

CONFIRM_TEXT = re.compile(r"确认|同意|确定")
DECLINE_TEXT = re.compile(r"取消|不同意|返回|放弃")


class WapSteps:
    """Browsing state of one run: the entry page and what was already visited."""

    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner
        self.browser = Browser(runner.lease, runner.recorder, runner.env.carrier)
        self.entry: Page | None = None
        self.visited: set[str] = set()

    def run(self, step: WapStep) -> None:
        # browsing may change what the SIM is subscribed to: a list taken before is stale
        self.runner.listing_is_last = False
        if isinstance(step, Open):
            self.open()
        elif isinstance(step, Explore):
            self.explore(step.limit)
        elif isinstance(step, Order):
            self.order(step.confirm)
        elif isinstance(step, Use):
            self.use()

    # -- steps --------------------------------------------------------------------------

    def open(self) -> None:
        service = self.runner.service
        if service is None or not service.url:
            self.runner.recorder.note("open skipped: the service has no WAP url")
            return
        self.runner._ensure_obligation()  # the visit itself may subscribe the SIM
        chain = self.browser.chain(service.url, "open")
        pages = [p for p in chain.pages if not p.carrier_page]
        self.entry = pages[-1] if pages else None
        self._decline_if_ordering(chain)

    def explore(self, limit: int) -> None:
        entry, service = self.entry, self.runner.service
        if entry is None or service is None:
            return
        host = urlsplit(entry.response.url).netloc
        others = [
            link
            for link in entry.links
            if link.text.strip() != service.subscribe_cmd.strip()
            and urlsplit(link.href).netloc == host
            and link.href not in self.visited
            and link.href != entry.response.url
        ]
        for link in others[:limit]:
            self.visited.add(link.href)
            self._decline_if_ordering(self._click(link, entry))

    def order(self, confirm: bool) -> None:
        entry, service = self.entry, self.runner.service
        if entry is None or service is None:
            return
        link = next(
            (x for x in entry.links if x.text.strip() == service.subscribe_cmd.strip()), None
        )
        if link is None:
            self.runner.recorder.note(f"order link {service.subscribe_cmd!r} not on the entry page")
            return
        chain = self._click(link, entry, ActionKind.ORDER)
        last = chain.last
        if last is not None and last.carrier_page:
            self._answer(last, confirm)

    def use(self) -> None:
        service = self.runner.service
        if service is None or not service.use_cmd or self.entry is None:
            return
        link = next(
            (x for x in self.entry.links if x.text.strip() == service.use_cmd.strip()), None
        )
        if link is None:
            self.runner.recorder.note(f"use link {service.use_cmd!r} not on the entry page")
            return
        self._decline_if_ordering(self._click(link, self.entry, ActionKind.USE))

    # -- helpers ------------------------------------------------------------------------

    def _click(self, link: Link, page: Page, kind: ActionKind | None = None) -> Chain:
        at = now()
        chain = self.browser.chain(link.href, "link", link.text, page.response.url)
        if kind is not None and chain.pages:
            self.runner.actions.append(Action(kind, at, chain.pages[0].event.id, None))
        return chain

    def _decline_if_ordering(self, chain: Chain) -> None:
        """A chain the robot did not mean as an order reached the carrier's page: decline."""
        last = chain.last
        if last is not None and last.carrier_page:
            self._answer(last, confirm=False)

    def _answer(self, page: Page, confirm: bool) -> None:
        wanted = CONFIRM_TEXT if confirm else DECLINE_TEXT
        link = next(
            (
                x
                for x in page.links
                if wanted.search(x.text) and not (confirm and DECLINE_TEXT.search(x.text))
            ),
            None,
        )
        if link is None:
            self.runner.recorder.note("carrier page without a confirm/cancel link")
            return
        at = now()
        how = "confirm" if confirm else "decline"
        chain = self.browser.chain(link.href, how, link.text, page.response.url)
        kind = ActionKind.CONFIRM if confirm else ActionKind.WITHHOLD
        event_id = chain.pages[0].event.id if chain.pages else None
        self.runner.actions.append(Action(kind, at, event_id, None))
