"""Browsing like a subscriber: pages over the modem's HTTP stack, every hop recorded.

The robot loads pages with automatic redirects off. Each response becomes an
`http` evidence event (method, URL, status, headers, size, SHA-256, the body
up to a bound, and what led there: the entry URL, a link and its text, or a
redirect). A redirect - 30x `Location`, `<meta http-equiv="refresh">` or a
script `location=` - is then followed one hop at a time, recorded, up to
`MAX_HOPS`; a chain stops at the carrier's confirmation page (recognised by
the profile's `wap_confirm`), where the caller decides to confirm or decline.

SP pages are untrusted: links are parsed by pattern, never executed, and
only absolute http:// URLs that pass the driver's checks are ever requested.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow
from dialbot.errors import UnsafeInputError
from dialbot.fleet import Lease
from dialbot.flows.record import Recorder, now
from dialbot.modem.http import HttpResponse, check_url

MAX_HOPS = 5
BODY_BOUND = 16 * 1024  # characters of a page kept in the evidence event
_LINK = re.compile(r"<a\s[^>]*?href\s*=\s*[\"']([^\"']*)[\"'][^>]*>(.*?)</a>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_REFRESH = re.compile(
    r"<meta\s[^>]*http-equiv\s*=\s*[\"']?refresh[\"']?[^>]*content\s*=\s*[\"'][^\"']*?url\s*=\s*([^\"'>\s]+)",
    re.I,
)
_SCRIPT = re.compile(r"location(?:\.href)?\s*=\s*[\"']([^\"']+)[\"']", re.I)
PRICE = re.compile(r"\d+(?:\.\d{1,2})?\s*(?:元|块|分)")
_counter = itertools.count(1)


@dataclass(frozen=True)
class Link:
    text: str
    href: str


@dataclass
class Page:
    """One response as the robot saw it, with the event that records it."""

    response: HttpResponse
    text: str
    links: list[Link]
    redirect: str | None
    carrier_page: bool
    event: EventRow


@dataclass
class Chain:
    """The pages one action led to (the first is what was asked, the rest redirects)."""

    pages: list[Page] = field(default_factory=list)

    @property
    def last(self) -> Page | None:
        return self.pages[-1] if self.pages else None


def page_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def links_of(text: str, base: str) -> list[Link]:
    """The page's links, text without markup, href made absolute."""
    out = []
    for href, inner in _LINK.findall(text):
        label = html.unescape(_TAG.sub("", inner)).strip()
        out.append(Link(label, urljoin(base, html.unescape(href.strip()))))
    return out


def redirect_of(response: HttpResponse, text: str) -> str | None:
    """Where the page sends the robot by itself: 30x Location, meta refresh, script."""
    target = response.location
    if target is None:
        match = _REFRESH.search(text) or _SCRIPT.search(text)
        target = html.unescape(match.group(1)) if match else None
    return urljoin(response.url, target) if target else None


class Browser:
    """Pages through a leased modem; records every response before returning it."""

    def __init__(self, lease: Lease, recorder: Recorder, carrier: CarrierProfile) -> None:
        self.lease = lease
        self.recorder = recorder
        self.carrier = carrier
        self.confirm = re.compile(carrier.wap_confirm)

    def chain(self, url: str, how: str, text: str = "", start: str = "") -> Chain:
        """Load `url` (led by `how`: open, link, confirm, decline) and its redirects, hop by hop."""
        chain_id = next(_counter)
        result = Chain()
        led = {"how": how, "text": text, "from": start, "chain": chain_id, "hop": 0}
        target: str | None = url
        for hop in range(MAX_HOPS + 1):
            if target is None:
                break
            try:
                check_url(target)
            except UnsafeInputError as exc:
                self.recorder.note(f"not followed: {exc}")
                break
            page = self.load(target, led)
            result.pages.append(page)
            if page.carrier_page:
                break
            led = {"how": "redirect", "text": "", "from": target, "chain": chain_id, "hop": hop + 1}
            led["root"] = how
            target = page.redirect
        return result

    def load(self, url: str, led: dict[str, object]) -> Page:
        at = now()
        response = self.lease.modem.http("GET", url, self.carrier)
        text = page_text(response.body)
        links = links_of(text, response.url)
        carrier_page = bool(self.confirm.search(text))
        redirect = redirect_of(response, text)
        data = {
            "method": response.method,
            "url": response.url,
            "status": response.status,
            "headers": [list(h) for h in response.headers],
            "size": len(response.body),
            "content_length": response.content_length,
            "sha256": hashlib.sha256(response.body).hexdigest(),
            "truncated": response.truncated or len(text) > BODY_BOUND,
            "led_by": {"root": led.get("how"), **led},
            "redirect": redirect,
            "links": [[link.text, link.href] for link in links[:50]],
            "carrier_page": carrier_page,
            "price_shown": bool(PRICE.search(_TAG.sub("", text))),
        }
        event = self.recorder.http(url, response.status, text[:BODY_BOUND], at, data)
        return Page(response, text, links, redirect, carrier_page, event)
