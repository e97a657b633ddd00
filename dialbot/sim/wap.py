"""The carrier's WAP gateway and its order confirmation page (spec/channels.md §2, §6).

Every HTTP request a virtual modem puts on the air arrives here. Only the
gateway is reachable, and only on the carrier's WAP APN through its proxy
address (`wap_proxy`); anything else fails as it does on a real cmwap
bearer (the name does not resolve, or the socket does not connect). The
gateway stamps the subscriber's number (`x-up-calling-line-id: 86…`) on
what it forwards - the robot never sees that header - routes by host to the
SP sites or to the carrier's own confirmation page, and bills the traffic at
`data_fee_fen_per_kb` per started KB (request and response, headers
included) through the carrier's ledger, as `data_traffic` with no SP.

The confirmation page (二次确认) names SP, service, registered price and
hotline, with a confirm and a cancel link; confirming charges and subscribes
through the carrier, exactly once per order token, and only for the SIM the
order was made for.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs, urlsplit

from dialbot.sim.carrier import BRAND, Account, Carrier
from dialbot.sim.contracts import HttpRequest, HttpResult
from dialbot.sim.wap_sites import CALLING_LINE, WapSite, html, link, price_text
from dialbot.sim.world import Service, Sp, World

CONFIRM_HOST = "wap.monternet.example"
CONFIRM_ORIGIN = f"http://{CONFIRM_HOST}"
KB = 1024


@dataclass
class Order:
    """An order waiting on the carrier's confirmation page."""

    msisdn: str
    site: WapSite
    back: str


class WapGateway:
    """The gateway, the SP sites behind it and the carrier's confirmation page."""

    def __init__(
        self, world: World, carrier: Carrier, account_of: Callable[[str], Account]
    ) -> None:
        self.profile = world.carrier
        self.carrier = carrier
        self.account_of = account_of
        self.sites: dict[str, list[WapSite]] = {}
        self.by_service: dict[tuple[str, str], WapSite] = {}
        self.orders: dict[str, Order] = {}
        # Hosts served by the carrier itself (the MMSC): host -> handler of stamped requests.
        self.hosts: dict[str, Callable[[HttpRequest], HttpResult]] = {}
        for sp in world.sps:
            for service in sp.services:
                if service.channel == "wap" and service.url:
                    site = WapSite(sp, service, carrier, account_of, self.confirm_url)
                    self.sites.setdefault(urlsplit(service.url).netloc, []).append(site)
                    self.by_service[(sp.code, service.code)] = site

    def request(self, msisdn: str, request: HttpRequest) -> HttpResult:
        """One request from the SIM `msisdn`: reachability, stamping, routing, billing."""
        unreachable = self._unreachable(request)
        if unreachable is not None:
            return HttpResult(error=unreachable)
        stamped = HttpRequest(
            request.apn,
            request.via,
            request.method,
            request.url,
            (*request.headers, (CALLING_LINE, "86" + msisdn)),
            request.body,
        )
        result = self._route(msisdn, stamped)
        self._bill(msisdn, request, result)
        return result

    def _unreachable(self, request: HttpRequest) -> str | None:
        if request.apn.lower() != self.profile.apn.lower():
            return "dns"  # another APN: no gateway, and no Internet in this world
        host, port = self.profile.proxy_host_port
        if request.via not in (f"{host}:{port}", host if port == 80 else ""):
            via_host = request.via.rsplit(":", 1)[0]
            return "socket" if via_host.replace(".", "").isdigit() else "dns"
        if not request.url.startswith("http://"):
            return "socket"
        return None

    def _route(self, msisdn: str, request: HttpRequest) -> HttpResult:
        parts = urlsplit(request.url)
        if parts.hostname == CONFIRM_HOST:
            return self.confirm_page(msisdn, parts.path, parse_qs(parts.query))
        if parts.netloc in self.hosts:
            return self.hosts[parts.netloc](request)
        for site in self.sites.get(parts.netloc, []):
            path = parts.path.rstrip("/") or "/"
            if path == (site.base or "/") or path.startswith(site.base + "/"):
                return site.handle(request)
        return html(502, "502", ["网关无法连接到该站点。"])

    def _bill(self, msisdn: str, request: HttpRequest, result: HttpResult) -> None:
        fee = self.profile.data_fee_fen_per_kb
        if fee <= 0:
            return
        size = len(request.body) + len(result.body) + len(request.url) + 64
        size += sum(len(k) + len(v) + 4 for k, v in (*request.headers, *result.headers))
        started_kb = -(-size // KB)
        self.carrier.charge(self.account_of(msisdn), fee * started_kb, "data_traffic", "", "")

    # --- the carrier's confirmation page --------------------------------------------------

    def confirm_url(self, account: Account, sp: Sp, service: Service, back: str) -> str:
        """Register an order for `account` and give the URL of its confirmation page."""
        token = secrets.token_hex(8)
        self.orders[token] = Order(account.msisdn, self.by_service[(sp.code, service.code)], back)
        return f"{CONFIRM_ORIGIN}/confirm?o={token}"

    def confirm_page(self, msisdn: str, path: str, query: dict[str, list[str]]) -> HttpResult:
        token = (query.get("o") or [""])[0]
        order = self.orders.get(token)
        if order is None or order.msisdn != msisdn:
            return html(200, "订购确认", ["该订购请求已失效。"])
        site = order.site
        if path == "/confirm":
            return self._confirm_form(token, site)
        del self.orders[token]
        if path == "/confirm/yes":
            site.activate(self.account_of(msisdn), "confirmed")
            return html(
                200, "订购成功", [f"您已成功订购{escape(site.service.name)}。", site.content_link()]
            )
        return html(200, "已取消", ["您已取消本次订购，不会产生费用。", link(order.back, "返回")])

    def _confirm_form(self, token: str, site: WapSite) -> HttpResult:
        sp, service = site.sp, site.service
        hotline = f"，客服电话{escape(sp.hotline)}" if sp.hotline else ""
        return html(
            200,
            f"{BRAND}二次确认",
            [
                f"{BRAND}二次确认：您将订购{escape(sp.name)}提供的{escape(service.name)}，"
                f"资费{price_text(service)}（由{BRAND}代收费）{hotline}。",
                link(f"{CONFIRM_ORIGIN}/confirm/yes?o={token}", "确认订购"),
                link(f"{CONFIRM_ORIGIN}/confirm/no?o={token}", "取消"),
            ],
        )
