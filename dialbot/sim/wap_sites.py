"""The SPs' WAP sites behind the simulated gateway (spec/channels.md §6).

One `WapSite` per WAP service, generated from the world file. Paths are
relative to the service's entry URL `P`:

- `P` the entry page: name, price (明码标价, unless `page_omits_price`), the
  order link (its text is the service's `subscribe`), a content link and, with
  `misleading_link`, a link of that text that orders too; `subscribe_on_visit`
  charges and subscribes on the visit itself, `auto_redirect_to_order` answers
  302 to the order URL instead of the page;
- `P/order` (and `P/enter`, the misleading link's target): the order. An
  honest SP redirects to the carrier's confirmation page; with
  `skips_carrier_confirm` it charges and subscribes at once;
- `P/content` the content, for subscribers (per-use services charge for it
  through the carrier's page like an order).

The site learns the subscriber only from the gateway's `x-up-calling-line-id`
header, as a real SP did. Pages are XHTML-MP in UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from urllib.parse import urlsplit

from dialbot.sim.carrier import Account, Carrier, yuan
from dialbot.sim.contracts import HttpRequest, HttpResult
from dialbot.sim.sps import charged_amount
from dialbot.sim.world import Service, Sp

HTML = (("Content-Type", "application/xhtml+xml; charset=utf-8"),)
CALLING_LINE = "x-up-calling-line-id"
# `confirm_url(account, sp, service, back)`: the carrier's page for this order.
ConfirmUrl = Callable[[Account, Sp, Service, str], str]


def page(title: str, paragraphs: list[str]) -> bytes:
    """An XHTML-MP page; `paragraphs` are already escaped markup."""
    body = "".join(f"<p>{p}</p>\n" for p in paragraphs)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//WAPFORUM//DTD XHTML Mobile 1.0//EN" '
        '"http://www.wapforum.org/DTD/xhtml-mobile10.dtd">\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{escape(title)}</title></head>'
        f"<body>\n{body}</body></html>\n"
    ).encode()


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def html(status: int, title: str, paragraphs: list[str]) -> HttpResult:
    return HttpResult(status=status, headers=HTML, body=page(title, paragraphs))


def redirect(location: str) -> HttpResult:
    return HttpResult(status=302, headers=(("Location", location), *HTML), body=b"")


def price_text(service: Service) -> str:
    unit = "月" if service.billing == "monthly" else "次"
    return f"{yuan(service.price_fen)}元/{unit}"


class WapSite:
    """The WAP site of one service; `handle` gets requests already stamped by the gateway."""

    def __init__(
        self,
        sp: Sp,
        service: Service,
        carrier: Carrier,
        account_of: Callable[[str], Account],
        confirm_url: ConfirmUrl,
    ) -> None:
        assert service.url is not None
        self.sp = sp
        self.service = service
        self.carrier = carrier
        self.account_of = account_of
        self.confirm_url = confirm_url
        parts = urlsplit(service.url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base = parts.path.rstrip("/") or ""

    def paths(self) -> dict[str, Callable[[Account], HttpResult]]:
        return {
            self.base or "/": self.entry,
            self.base + "/order": self.order,
            self.base + "/enter": self.order,
            self.base + "/content": self.content,
        }

    def handle(self, request: HttpRequest) -> HttpResult:
        """Serve one request; the subscriber is whoever the gateway says."""
        calling = dict((k.lower(), v) for k, v in request.headers).get(CALLING_LINE)
        if not calling:
            return html(403, "403", ["请通过中国移动WAP网关访问。"])
        account = self.account_of(calling.removeprefix("86"))
        handler = self.paths().get(urlsplit(request.url).path.rstrip("/") or "/")
        if handler is None:
            return html(404, "404", ["页面不存在。"])
        return handler(account)

    # --- pages ----------------------------------------------------------------------

    def url(self, suffix: str = "") -> str:
        return self.origin + (self.base or "") + suffix

    def subscribed(self, account: Account) -> bool:
        return (self.sp.code, self.service.code) in account.subscriptions

    def entry(self, account: Account) -> HttpResult:
        b = self.service.behaviour
        if b.auto_redirect_to_order and not self.subscribed(account):
            return redirect(self.url("/order"))
        if b.subscribe_on_visit and not self.subscribed(account):
            self.activate(account, "unconfirmed")
        lines = [f"{escape(self.sp.name)}：{escape(self.service.name)}"]
        if not b.page_omits_price:
            lines.append(f"资费：{price_text(self.service)}（由中国移动代收费）")
        lines.append(link(self.url("/order"), self.service.subscribe))
        if b.misleading_link:
            lines.append(link(self.url("/enter"), b.misleading_link))
        lines.append(link(self.url("/content"), "查看内容"))
        if self.sp.hotline:
            lines.append(f"客服电话：{escape(self.sp.hotline)}")
        return html(200, self.service.name, lines)

    def order(self, account: Account) -> HttpResult:
        if self.service.billing == "monthly" and self.subscribed(account):
            return html(200, self.service.name, ["您已订购本业务。", self.content_link()])
        if self.service.behaviour.skips_carrier_confirm:
            self.activate(account, "unconfirmed")
            return html(200, "订购成功", ["订购成功！", self.content_link()])
        return redirect(self.confirm_url(account, self.sp, self.service, self.url()))

    def content(self, account: Account) -> HttpResult:
        if self.service.billing == "monthly" and not self.subscribed(account):
            return html(200, self.service.name, ["您尚未订购本业务。", link(self.url(), "返回")])
        if self.service.billing == "per_use":
            price = f"本内容按次收费，资费：{price_text(self.service)}"
            return html(
                200, self.service.name, [price, link(self.url("/order"), self.service.subscribe)]
            )
        return self.content_page()

    def content_page(self) -> HttpResult:
        if not self.service.behaviour.delivers_content:
            return html(200, self.service.name, [])
        text = f"【{escape(self.service.name)}】今日内容：第1期。"
        return html(200, self.service.name, [text, link(self.url(), "返回")])

    def content_link(self) -> str:
        return link(self.url("/content"), "查看内容")

    # --- money ---------------------------------------------------------------------

    def activate(self, account: Account, how: str) -> None:
        """The order goes through: charge (maybe twice), subscribe, carrier notice."""
        b = self.service.behaviour
        amount = charged_amount(self.service)
        reason = "subscribe" if self.service.billing == "monthly" else "per_use"
        if how != "confirmed":
            reason = "unconfirmed_charge"
        self.carrier.charge(account, amount, reason, self.sp.code, self.service.code)
        if b.double_charge:
            self.carrier.charge(account, amount, "duplicate", self.sp.code, self.service.code)
        if self.service.billing == "monthly":
            self.carrier.subscribe(account, self.sp, self.service, how)
        self.carrier.notify_order(account, self.sp, self.service, amount)
