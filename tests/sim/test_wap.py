"""The WAP gateway, the SP sites and the carrier's confirmation page, against the ledger."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dialbot.errors import WorldError
from dialbot.sim.contracts import HttpRequest, HttpResult
from dialbot.sim.wap import CONFIRM_HOST
from dialbot.sim.worldfile import load_world

from .support import BASE_WORLD, Rig, rig, write_world

ENTRY = "http://wap.zsly.example/joke"
PROXY = "10.0.0.172:80"


def wap_world(behaviour: dict | None = None, **carrier: object) -> dict:
    service: dict[str, Any] = {
        "code": "ZSWAP",
        "name": "掌上笑话",
        "channel": "wap",
        "url": ENTRY,
        "billing": "monthly",
        "price_fen": 500,
        "subscribe": "订购",
        "behaviour": behaviour or {},
    }
    world: dict[str, Any] = {
        **copy.deepcopy(BASE_WORLD),
        "sps": [
            {"code": "901020", "name": "掌上乐园", "hotline": "4008009000", "services": [service]}
        ],
    }
    if carrier:
        world["carrier"] = dict(carrier)
    return world


def get(r: Rig, url: str, slot: int = 1, via: str = PROXY, apn: str = "cmwap") -> HttpResult:
    request = HttpRequest(apn, via, "GET", url, (("User-Agent", "test"),))
    return r.network.http(r.phones[slot - 1].msisdn, request)


def text(result: HttpResult) -> str:
    return result.body.decode("utf-8")


def links(result: HttpResult) -> dict[str, str]:
    return {
        t: h.replace("&amp;", "&")
        for h, t in re.findall(r'<a href="([^"]+)">([^<]+)</a>', text(result))
    }


def location(result: HttpResult) -> str:
    return dict(result.headers)["Location"]


def charges(r: Rig) -> list[tuple[int, str]]:
    return [(e["amount_fen"], e["reason"]) for e in r.ledger()]


def subscriptions(r: Rig) -> list[tuple[str, str]]:
    return [(s["service_code"], s["how"]) for s in r.truth()["subscriptions"]]


def test_honest_order_passes_the_carrier_page(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world())
    entry = get(r, ENTRY)
    assert entry.status == 200 and "资费：5.00元/月" in text(entry)
    order = get(r, links(entry)["订购"])
    assert order.status == 302 and CONFIRM_HOST in location(order)
    assert charges(r) == []
    confirm = get(r, location(order))
    page = text(confirm)
    for part in ("二次确认", "掌上乐园", "掌上笑话", "5.00元/月", "4008009000"):
        assert part in page
    done = get(r, links(confirm)["确认订购"])
    assert "成功订购" in text(done)
    assert charges(r) == [(500, "subscribe")]
    assert subscriptions(r) == [("ZSWAP", "confirmed")]
    again = get(r, links(confirm)["确认订购"])  # one order, one charge
    assert "失效" in text(again) and charges(r) == [(500, "subscribe")]
    content = get(r, links(done)["查看内容"])
    assert "第1期" in text(content)
    r.send("0000", to="10086")
    r.send("1", to="10086")
    assert subscriptions(r) == []


def test_cancel_link_declines_without_charge(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world())
    confirm = get(r, location(get(r, ENTRY + "/order")))
    assert "取消本次订购" in text(get(r, links(confirm)["取消"]))
    assert charges(r) == [] and subscriptions(r) == []


def test_confirmation_belongs_to_the_sim_that_ordered(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world())
    confirm = get(r, location(get(r, ENTRY + "/order")))
    stolen = get(r, links(confirm)["确认订购"], slot=2)
    assert "失效" in text(stolen) and r.ledger(2) == [] and charges(r) == []


def test_subscribe_on_visit(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world({"subscribe_on_visit": True}))
    assert get(r, ENTRY).status == 200
    assert charges(r) == [(500, "unconfirmed_charge")]
    assert subscriptions(r) == [("ZSWAP", "unconfirmed")]


def test_auto_redirect_to_order(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world({"auto_redirect_to_order": True}))
    entry = get(r, ENTRY)
    assert entry.status == 302 and location(entry) == ENTRY + "/order"
    assert CONFIRM_HOST in location(get(r, location(entry)))
    assert charges(r) == []


def test_misleading_link_orders(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world({"misleading_link": "进入"}))
    entry = get(r, ENTRY)
    assert set(links(entry)) >= {"订购", "进入", "查看内容"}
    assert CONFIRM_HOST in location(get(r, links(entry)["进入"]))


def test_skips_carrier_confirm(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world({"skips_carrier_confirm": True}))
    result = get(r, links(get(r, ENTRY))["订购"])
    assert result.status == 200 and "订购成功" in text(result)
    assert charges(r) == [(500, "unconfirmed_charge")]
    assert subscriptions(r) == [("ZSWAP", "unconfirmed")]


def test_page_omits_price_but_carrier_page_shows_it(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world({"page_omits_price": True}))
    entry = get(r, ENTRY)
    assert "元" not in text(entry)
    assert "5.00元/月" in text(get(r, location(get(r, links(entry)["订购"]))))


def test_gateway_stamps_the_number_the_robot_never_sees(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world())
    direct = r.network.wap.sites["wap.zsly.example"][0].handle(
        HttpRequest("cmwap", PROXY, "GET", ENTRY)
    )
    assert direct.status == 403  # an SP site answers only what the gateway stamped
    result = get(r, ENTRY)
    assert "x-up-calling-line-id" not in text(result).lower()
    assert all(k.lower() != "x-up-calling-line-id" for k, _ in result.headers)


@pytest.mark.parametrize(
    ("via", "apn", "error"),
    [
        ("wap.zsly.example:80", "cmwap", "dns"),  # no proxy on cmwap: the name does not resolve
        ("10.1.2.3:80", "cmwap", "socket"),
        (PROXY, "cmnet", "dns"),
    ],
)
def test_only_the_gateway_is_reachable(tmp_path: Path, via: str, apn: str, error: str) -> None:
    r = rig(tmp_path, wap_world())
    assert get(r, ENTRY, via=via, apn=apn).error == error


def test_traffic_is_billed_per_started_kb_without_sp(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world(data_fee_fen_per_kb=3))
    result = get(r, ENTRY)
    entries = r.ledger()
    assert [(e["reason"], e["sp_code"]) for e in entries] == [("data_traffic", "")]
    seen_kb = -(-len(result.body) // 1024)
    assert 0 < entries[0]["amount_fen"] <= 3 * (seen_kb + 1)
    assert entries[0]["amount_fen"] % 3 == 0


def test_unknown_host_is_a_gateway_error(tmp_path: Path) -> None:
    r = rig(tmp_path, wap_world())
    assert get(r, "http://wap.nowhere.example/").status == 502
    assert get(r, ENTRY + "/nothing").status == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": None}, "url"),
        ({"url": 'http://wap.x.example/a"b'}, "url"),
        ({"url": "ftp://wap.x.example/"}, "url"),
        ({"channel": "fax"}, "channel"),
    ],
)
def test_world_file_refuses_bad_wap_services(tmp_path: Path, change: dict, message: str) -> None:
    data = wap_world()
    service = data["sps"][0]["services"][0]
    for key, value in change.items():
        if value is None:
            service.pop(key)
        else:
            service[key] = value
    with pytest.raises(WorldError, match=message):
        load_world(write_world(tmp_path, data))


def test_world_file_reads_wap_keys(tmp_path: Path) -> None:
    data = wap_world({"misleading_link": "免费", "wap_push_per_night": 2})
    data["bank"]["slots"] = {1: {"dialect": "quectel", "faults": {"http_error": 603}}}
    world = load_world(write_world(tmp_path, data))
    service = world.sps[0].services[0]
    assert (service.channel, service.url, service.access) == ("wap", ENTRY, "")
    assert service.behaviour.misleading_link == "免费"
    assert service.behaviour.wap_push_per_night == 2
    assert world.sims[0].faults.http_error == 603
    data["bank"]["slots"] = {1: {"faults": {"http_error": 500}}}
    with pytest.raises(WorldError, match="http_error"):
        load_world(write_world(tmp_path, data))


def test_wap_push_per_night_goes_to_sims_not_subscribed(tmp_path: Path) -> None:
    data = wap_world({"wap_push_per_night": 2})
    data["night_s"] = 10
    r = rig(tmp_path, data)
    confirm = get(r, location(get(r, ENTRY + "/order", slot=2)), slot=2)
    get(r, links(confirm)["确认订购"], slot=2)  # SIM 2 subscribes; SIM 1 never does
    r.clock.advance(10.5)
    pushes = r.phones[0].pushes
    assert len(pushes) == 2 and all(href == ENTRY for _, href, _ in pushes)
    assert r.phones[1].pushes == []
    assert [m["kind"] for m in r.truth()["messages"]].count("wap_push") == 2
