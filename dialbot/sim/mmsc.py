"""The carrier's MMSC behind the WAP gateway, and the SPs' MMS notifications (channels.md §4, §6).

An SP with `channel: mms` delivers its content as MMS: the MMSC stores the
message, and the SIM receives an `m-notification.ind` in a WAP PUSH (two
concatenated 8-bit SMS to port 2948, sent from the SP's access number, as
SP MMS gateways did). The handset then fetches the notification's
`X-Mms-Content-Location` - an URL on the MMSC's host (carrier key `mmsc`) -
with an HTTP GET through the WAP proxy; the gateway stamps the subscriber's
number and bills the traffic like any page; the MMSC answers the
`m-retrieve.conf`, only to the SIM the message was for.

Behaviours (ground truth, `Behaviour`): `mms_empty` - every notification
announces a normal size, but its content is empty (an m-retrieve.conf
without parts) or, every other time, gone (404); `mms_after_cancel: n` -
n notifications after the cancellation was acknowledged. A notification for
a handset off the network is held by the SMSC like any message
(`dialbot.sim.smsc`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from dialbot.carrier import CarrierProfile
from dialbot.modem.mms import MmsNotification, MmsPart, encode_mms_push, encode_retrieve
from dialbot.sim.carrier import Account
from dialbot.sim.contracts import HttpRequest, HttpResult, Scheduler
from dialbot.sim.wap_sites import CALLING_LINE
from dialbot.sim.world import Service, Sp

MMS_TYPE = (("Content-Type", "application/vnd.wap.mms-message"),)
EXPIRY_S = 72 * 3600
AFTER_CANCEL_SPACING_S = 0.7
# (account, sender, WSP push, content location): hand a notification to the SMSC.
Push = Callable[[Account, str, bytes, str], None]


@dataclass
class Stored:
    """One message waiting at the MMSC."""

    msisdn: str
    sender: str
    transaction_id: str
    body: bytes | None  # None: the message is gone (404)


class Mmsc:
    """Stores each SP's messages, sends their notifications, serves their content."""

    def __init__(
        self,
        profile: CarrierProfile,
        clock: Scheduler,
        rng: random.Random,
        push: Push,
    ) -> None:
        self.origin = profile.mmsc.rstrip("/")
        self.host = urlsplit(self.origin).netloc
        self.clock = clock
        self.rng = rng
        self.push = push
        self.messages: dict[str, Stored] = {}
        self.issued: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(1)
        self.closed = False

    # --- the SP side ----------------------------------------------------------------------

    def notify(self, account: Account, sp: Sp, service: Service, delay_s: float) -> None:
        """Store one issue of `service` for `account` and push its notification."""
        key = (account.msisdn, service.code)
        n = self.issued.get(key, 0)
        self.issued[key] = n + 1
        serial = next(self._ids)
        token = f"{serial:06d}{self.rng.getrandbits(40):010x}"
        tid = f"T{token}"
        sender = service.access or f"10657{sp.code}"
        text = f"【{service.name}】第{n + 1}期：{sp.name}为您精选的彩信内容。".encode()
        full = encode_retrieve(
            tid, sender, service.name, [MmsPart("text/plain", text)], self.clock.now()
        )
        body: bytes | None = full
        if service.behaviour.mms_empty:
            empty = encode_retrieve(tid, sender, service.name, [], self.clock.now())
            body = empty if n % 2 == 0 else None
        self.messages[token] = Stored(account.msisdn, sender, tid, body)
        notification = MmsNotification(
            transaction_id=tid,
            version="1.0",
            message_class="personal",
            size=len(full),
            content_location=f"{self.origin}/mms/{token}",
            expiry_s=EXPIRY_S,
            sender=f"{sender}/TYPE=PLMN",
            subject=service.name,
        )
        payload = encode_mms_push(notification)
        self.clock.call_later(
            max(delay_s, 0.0), self._pusher(account, sender, payload, notification)
        )

    def after_cancel(self, account: Account, sp: Sp, service: Service, base_delay_s: float) -> None:
        """`mms_after_cancel` notifications once a cancellation was acknowledged."""
        for i in range(service.behaviour.mms_after_cancel):
            self.notify(account, sp, service, base_delay_s + (i + 1) * AFTER_CANCEL_SPACING_S)

    def _pusher(
        self,
        account: Account,
        sender: str,
        payload: bytes,
        notification: MmsNotification,
    ) -> Callable[[], None]:
        def push() -> None:
            if not self.closed:
                self.push(account, sender, payload, notification.content_location)

        return push

    # --- the HTTP side (behind the WAP gateway) ---------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResult:
        """A GET of a Content-Location, already stamped by the gateway."""
        calling = dict((k.lower(), v) for k, v in request.headers).get(CALLING_LINE, "")
        path = urlsplit(request.url).path
        token = path.removeprefix("/mms/") if path.startswith("/mms/") else ""
        stored = self.messages.get(token)
        if request.method != "GET":
            return _text(405, "method not allowed")
        if stored is None or calling.removeprefix("86") != stored.msisdn:
            return _text(404, "message not found")
        if stored.body is None:
            return _text(404, "message expired")
        return HttpResult(status=200, headers=MMS_TYPE, body=stored.body)


def _text(status: int, message: str) -> HttpResult:
    return HttpResult(
        status=status, headers=(("Content-Type", "text/plain"),), body=message.encode()
    )
