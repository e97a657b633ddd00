"""Catalogue storage: SPs and services keyed by their codes, with history.

A service row holds the current catalogue entry; every change adds a
``ServiceVersion`` snapshot (including the SP's name and hotline of the
time). Runs pin the version they probed, so re-importing a catalogue never
rewrites what an earlier probe was judged against. Services missing from a
later file are kept: a catalogue import updates, it never deletes history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from dialbot.db.models import Service, ServiceVersion, Sp

if TYPE_CHECKING:
    from dialbot.catalog import CatalogEntry

SERVICE_FIELDS = (
    "name",
    "access_number",
    "billing",
    "price_fen",
    "subscribe_cmd",
    "cancel_cmd",
    "use_cmd",
    "region",
    "channel",
    "url",
)
_ENTRY_FIELD = {"name": "service_name"}
_OPTIONAL_SERVICE_FIELDS = {"cancel_cmd", "use_cmd", "region", "channel", "url"}


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceView:
    """A catalogue entry as it stands now, flattened for listing and planning."""

    service_id: int
    version_id: int | None
    version: int
    sp_code: str
    sp_name: str
    sp_hotline: str | None
    service_code: str
    service_name: str
    access_number: str
    billing: str
    price_fen: int
    subscribe_cmd: str
    cancel_cmd: str | None
    use_cmd: str | None
    region: str | None
    channel: str = "sms"  # sms | wap | mms | ivr (spec/channels.md §1)
    url: str | None = None  # wap: the entry page


def apply_entries(
    session: Session, entries: Sequence[CatalogEntry], *, source: str | None = None
) -> ImportResult:
    """Create or update SPs and services from validated entries, in ``session``'s transaction."""
    result = ImportResult()
    sps = {sp.code: sp for sp in session.scalars(select(Sp).options(selectinload(Sp.services)))}
    touched: set[str] = set()
    for entry in entries:
        sp = sps.get(entry.sp_code)
        if sp is None:
            sp = Sp(
                code=entry.sp_code,
                name=entry.sp_name,
                hotline=_hotline_for(entry.sp_code, entries),
            )
            session.add(sp)
            sps[sp.code] = sp
        elif entry.sp_code not in touched:
            sp.name = entry.sp_name
            if "sp_hotline" in entry.present:
                sp.hotline = _hotline_for(entry.sp_code, entries)
        touched.add(entry.sp_code)
        service = next((s for s in sp.services if s.code == entry.service_code), None)
        if service is None:
            service = Service(code=entry.service_code, version=0, **_service_values(entry, None))
            sp.services.append(service)
            result.created += 1
        elif _update_service(service, entry):
            result.updated += 1
        else:
            result.unchanged += 1
    session.flush()
    for code in touched:
        for service in sps[code].services:
            _snapshot_if_changed(session, sps[code], service, source)
    return result


def _hotline_for(sp_code: str, entries: Sequence[CatalogEntry]) -> str | None:
    """The SP's hotline in this file: the first row of that SP that states one."""
    return next((e.sp_hotline for e in entries if e.sp_code == sp_code and e.sp_hotline), None)


def _service_values(entry: CatalogEntry, current: Service | None) -> dict[str, Any]:
    values = {}
    for name in SERVICE_FIELDS:
        if name in _OPTIONAL_SERVICE_FIELDS and name not in entry.present and current:
            values[name] = getattr(current, name)  # column absent from the file: keep
        else:
            values[name] = getattr(entry, _ENTRY_FIELD.get(name, name))
    return values


def _update_service(service: Service, entry: CatalogEntry) -> bool:
    changed = False
    for name, value in _service_values(entry, service).items():
        if getattr(service, name) != value:
            setattr(service, name, value)
            changed = True
    return changed


def _snapshot_if_changed(session: Session, sp: Sp, service: Service, source: str | None) -> None:
    """Add a version when the service (or its SP's name/hotline) differs from the latest."""
    wanted = {"sp_name": sp.name, "sp_hotline": sp.hotline}
    wanted.update({name: getattr(service, name) for name in SERVICE_FIELDS})
    latest = session.scalars(
        select(ServiceVersion)
        .where(ServiceVersion.service_id == service.id)
        .order_by(ServiceVersion.version.desc())
        .limit(1)
    ).first()
    if latest is not None and all(getattr(latest, k) == v for k, v in wanted.items()):
        return
    service.version = (latest.version if latest else 0) + 1
    session.add(
        ServiceVersion(service_id=service.id, version=service.version, source=source, **wanted)
    )


def list_services(session_factory: sessionmaker[Session]) -> list[ServiceView]:
    """Every catalogued service, current version, ordered by SP and service code."""
    with session_factory() as session:
        rows = session.execute(
            select(Service, Sp, ServiceVersion.id)
            .join(Sp, Service.sp_id == Sp.id)
            .outerjoin(
                ServiceVersion,
                (ServiceVersion.service_id == Service.id)
                & (ServiceVersion.version == Service.version),
            )
            .order_by(Sp.code, Service.code)
        ).all()
        return [_view(service, sp, version_id) for service, sp, version_id in rows]


def _view(service: Service, sp: Sp, version_id: int | None) -> ServiceView:
    return ServiceView(
        service_id=service.id,
        version_id=version_id,
        version=service.version,
        sp_code=sp.code,
        sp_name=sp.name,
        sp_hotline=sp.hotline,
        service_code=service.code,
        service_name=service.name,
        access_number=service.access_number,
        billing=service.billing,
        price_fen=service.price_fen,
        subscribe_cmd=service.subscribe_cmd,
        cancel_cmd=service.cancel_cmd,
        use_cmd=service.use_cmd,
        region=service.region,
        channel=service.channel or "sms",
        url=service.url,
    )


def service_history(
    session_factory: sessionmaker[Session], service_id: int
) -> list[ServiceVersion]:
    """Every version of a service, oldest first."""
    with session_factory() as session:
        return list(
            session.scalars(
                select(ServiceVersion)
                .where(ServiceVersion.service_id == service_id)
                .order_by(ServiceVersion.version)
            )
        )
