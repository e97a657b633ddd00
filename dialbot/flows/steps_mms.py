"""The MMS step of the flow language (`fetch_mms`): wait for notifications, fetch their content.

An MMS subscription is ordered by SMS like any other; its content arrives as
an `m-notification.ind` in a WAP PUSH (recorded by the intake as a
`wap_push` event with its raw PDUs). `fetch_mms` waits for a notification
from the SP received since the probe's last message to it, then fetches
every notification not fetched yet: the `X-Mms-Content-Location` by HTTP GET
through the carrier's WAP proxy, on the leased modem's own stack. Each gives
one `mms` evidence event (channels.md §8): the notification's fields, the
HTTP status, the content's size and SHA-256, its parts, the body up to
`BODY_BOUND`, and whether anything was delivered - what the judge's
CONTENT_NOT_DELIVERED rests on.

A notification that cannot be decoded, or names an unsafe URL, is recorded
as such (its push stays raw in the log) and never fetched. A module error or
a dropped bearer raises `HttpModuleError` out of the step: the run is an
infrastructure failure, not a finding. Notifications after the cancellation
are only recorded (fetching one could be billed), never fetched.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from dialbot.errors import UnsafeInputError
from dialbot.flows.intake import Received, from_access, national
from dialbot.flows.model import FetchMms
from dialbot.flows.record import now
from dialbot.modem.http import check_url
from dialbot.modem.mms import MmsError, decode_notification, decode_retrieve
from dialbot.modem.wsp import MMS_CONTENT_TYPE

if TYPE_CHECKING:
    from dialbot.flows.steps import StepRunner

BODY_BOUND = 16 * 1024  # octets of fetched content kept in the evidence event (as hex)
TEXT_BOUND = 4 * 1024  # characters of the content's text parts kept as the event's text


def is_notification(received: Received, access: str) -> bool:
    """A push from the SP that is (or may be: undecodable) an MMS notification."""
    push = received.message.wap_push
    if push is None or received.carrier or not from_access(received.message, access):
        return False
    return push.content_type in (MMS_CONTENT_TYPE, None)


class MmsSteps:
    """Which notifications of the run were fetched already."""

    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner
        self.fetched: set[int] = set()  # wap_push event ids

    def fetch(self, step: FetchMms) -> None:
        r = self.runner
        since = r.last_send_at

        def fresh(x: Received) -> bool:
            return is_notification(x, r.access) and (since is None or x.at >= since)

        if not any(fresh(x) for x in r.intake.seen):
            got = r.intake.wait_for(fresh, r.env.scaled(step.within), since=since)
            if got is None:
                r.recorder.note(
                    f"no MMS notification within {r.env.scaled(step.within):g}s", line=step.line
                )
        r.intake.drain()
        for received in list(r.intake.seen):
            if is_notification(received, r.access) and received.row.id not in self.fetched:
                self.fetched.add(received.row.id)
                self.fetch_one(received)

    def fetch_one(self, received: Received) -> None:
        """Decode one notification, fetch its content, record what came (or why nothing did)."""
        r = self.runner
        push = received.message.wap_push
        assert push is not None
        base: dict[str, Any] = {
            "push_event": received.row.id,
            "notified_at": received.at.isoformat(),
            "sender": national(received.message.sender),
            "delivered": False,
        }
        at = now()
        if push.error is not None:
            r.recorder.mms("", "undecodable", "", at, {**base, "error": f"push: {push.error}"})
            return
        try:
            notification = decode_notification(bytes.fromhex(push.body_hex))
        except MmsError as exc:
            r.recorder.mms("", "undecodable", "", at, {**base, "error": f"notification: {exc}"})
            return
        base["notification"] = notification.fields()
        url = notification.content_location
        try:
            check_url(url)
        except UnsafeInputError as exc:
            r.recorder.mms("", "refused", "", at, {**base, "error": f"content location: {exc}"})
            return
        response = r.lease.modem.http("GET", url, r.env.carrier)
        body = response.body
        data = {
            **base,
            "status": response.status,
            "headers": [list(h) for h in response.headers],
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "body_hex": body[:BODY_BOUND].hex(),
            "truncated": response.truncated or len(body) > BODY_BOUND,
        }
        text = ""
        if response.status == 200:
            try:
                content = decode_retrieve(body)
                data["parts"] = [[p.content_type, len(p.data)] for p in content.parts]
                data["subject"] = content.subject
                data["payload_size"] = content.payload_size
                text = "\n".join(
                    p.data.decode("utf-8", errors="replace")
                    for p in content.parts
                    if p.content_type.startswith("text/")
                )
            except MmsError as exc:
                data["error"] = f"content: {exc}"
                data["payload_size"] = len(body)  # not an MMS PDU, but something came
            data["delivered"] = data["payload_size"] > 0
        r.recorder.mms(url, str(response.status), text[:TEXT_BOUND], at, data)
