"""Bilingual names of violation codes, severities and evidence kinds.

The codes are stable identifiers (spec/violations.md); readers of the
publication get them with a Chinese name first and the English beside it.
An unknown code is shown as itself rather than dropped.
"""

from __future__ import annotations

VIOLATIONS: dict[str, tuple[str, str]] = {
    "UNCONFIRMED_CHARGE": ("未经确认扣费", "Charged without confirmation"),
    "UNCONFIRMED_SUBSCRIPTION": ("未经确认开通", "Subscribed without confirmation"),
    "UNSOLICITED_SUBSCRIPTION": ("私自订购", "Unsolicited subscription"),
    "OVERCHARGE": ("超标准收费", "Overcharge"),
    "CHARGE_AFTER_CANCEL": ("退订后扣费", "Charged after cancellation"),
    "CANCEL_FAILED": ("退订失败", "Cancellation failed"),
    "DUPLICATE_CHARGE": ("重复扣费", "Duplicate charge"),
    "PRICE_MISMATCH": ("提示资费不符", "Prompt price mismatch"),
    "PROMPT_INCOMPLETE": ("二次确认提示不完整", "Incomplete confirmation prompt"),
    "MESSAGE_AFTER_CANCEL": ("退订后仍发信息", "Messages after cancellation"),
    "UNSOLICITED_MESSAGE": ("垃圾信息", "Unsolicited messages (spam)"),
    "NO_RESPONSE": ("无响应", "No response"),
    "CONTENT_NOT_DELIVERED": ("未下发内容", "Content not delivered"),
    "RENEWAL_WITHOUT_REMINDER": ("续订未提醒", "Renewed without reminder"),
    "TRIAL_CONVERTED_SILENTLY": ("免费体验到期未提醒转收费", "Trial converted to paid silently"),
    "FORCED_REDIRECT": ("强制跳转订购", "Forced redirect to an order"),
    "MISLEADING_LINK": ("诱导订购链接", "Misleading link (诱导订购)"),
    "CALL_OVERBILLED": ("声讯超时长计费", "Call billed beyond its minutes"),
    "CALL_NOT_RELEASED": ("挂机后未释放", "Call not released after hang-up"),
}

SEVERITIES: dict[str, tuple[str, str]] = {
    "critical": ("严重", "critical"),
    "major": ("重大", "major"),
    "minor": ("一般", "minor"),
    "quality": ("服务质量", "quality"),
}

EVIDENCE_KINDS: dict[str, tuple[str, str]] = {
    "sms_in": ("收到短信", "SMS received"),
    "sms_out": ("发出短信", "SMS sent"),
    "balance": ("余额查询", "balance reading"),
    "subscriptions": ("订购查询", "subscription list"),
    "ussd": ("USSD 会话", "USSD session"),
    "modem_fault": ("设备故障", "modem fault"),
    "note": ("备注", "note"),
    "http": ("WAP 页面", "WAP page"),
    "wap_push": ("收到WAP PUSH", "WAP PUSH received"),
    "call": ("语音呼叫", "voice call"),
    "mms": ("彩信下载", "MMS fetched"),
}


def violation_name(code: str) -> tuple[str, str]:
    """(Chinese, English) name of a violation code; the code itself when unknown."""
    return VIOLATIONS.get(code, (code, code))


def severity_name(severity: str) -> tuple[str, str]:
    """(Chinese, English) name of a severity."""
    return SEVERITIES.get(severity, (severity, severity))


def evidence_kind_name(kind: str) -> tuple[str, str]:
    """(Chinese, English) name of an evidence event kind; the kind itself when unknown."""
    return EVIDENCE_KINDS.get(kind, (kind, kind))
