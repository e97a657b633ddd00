"""`dialbot probe SP_CODE [SERVICE_CODE]`: probe one SP now, with a live transcript.

Without --flow each service gets the standard flows for its billing type
(decline, then monthly or per_use). Exit status: 0 when the probes found
nothing against the SP, 1 when they found violations, 2 on a usage error,
3 when a probe could not be completed (no modem, modem faults).
"""

from __future__ import annotations

import click
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from dialbot.cli._db import open_db
from dialbot.cli.common import get_config
from dialbot.config import Config
from dialbot.db.catalogue import ServiceView, list_services
from dialbot.db.models import RunState
from dialbot.db.runs import upsert_sim
from dialbot.errors import ConfigError, FlowError
from dialbot.fleet import Fleet, FleetModem, Lease, NoModemAvailable
from dialbot.flows.loader import load_flows
from dialbot.flows.model import Flow
from dialbot.flows.record import now
from dialbot.flows.runner import ProbeEnv, RunOutcome, SimRef, modem_label, run_flow, service_info
from dialbot.flows.summary import findings_table, transcript_line
from dialbot.flows.sweep import FleetSink, abort_unfinished, flow_names, open_fleet, reachable
from dialbot.flows.watch import Watch
from dialbot.judge.model import Finding

EXIT_VIOLATIONS, EXIT_USAGE, EXIT_INCOMPLETE = 1, 2, 3


def _modem(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    bank, _, slot = value.rpartition(":")
    if not bank or not slot.isdigit():
        raise click.BadParameter("expected BANK:SLOT, e.g. sim-01:3", param_hint="--modem")
    return bank, int(slot)


def _select(
    services: list[ServiceView], sp_code: str, service_code: str | None
) -> list[ServiceView]:
    chosen = [s for s in services if s.sp_code == sp_code]
    if not chosen:
        raise click.UsageError(f"no SP {sp_code!r} in the catalogue")
    if service_code is not None:
        chosen = [s for s in chosen if s.service_code == service_code]
        if not chosen:
            raise click.UsageError(f"SP {sp_code} has no service {service_code!r}")
    return chosen


def _plan(
    chosen: list[ServiceView], flows: dict[str, Flow], name: str | None
) -> list[tuple[ServiceView, Flow]]:
    if name is not None:
        if name not in flows:
            raise click.UsageError(f"no flow {name!r} (known: {', '.join(sorted(flows))})")
        flow = flows[name]
        fitting = [
            s
            for s in chosen
            if s.billing in flow.billing
            and (flow.kind == "wap") == (s.channel == "wap")
            and (flow.kind != "mms" or s.channel == "mms")
        ]
        if not fitting:
            raise click.UsageError(f"flow {name!r} is for {', '.join(flow.billing)} services")
        return [(s, flow) for s in fitting]
    return [(s, flows[f]) for s in chosen for f in flow_names(s) if f in flows]


class _Prober:
    """Runs the planned flows, each on a ready modem, retrying a modem fault elsewhere."""

    def __init__(
        self,
        db: sessionmaker[Session],
        config: Config,
        fleet: Fleet,
        console: Console,
        catalogue: list[ServiceView],
        pinned: tuple[str, int] | None,
    ) -> None:
        self.db = db
        self.fleet = fleet
        self.console = console
        self.pinned = pinned
        infos = tuple(service_info(s) for s in catalogue)
        self.watch = Watch(db, config.carrier, infos, grace_s=config.probe.time_scale * 120)
        self.env = ProbeEnv(
            db,
            config.carrier,
            config.probe.time_scale,
            infos,
            self.watch.put,
            on_event=lambda row: console.print(transcript_line(row), highlight=False),
        )

    def lease(self, service: ServiceView, exclude: set[str]) -> Lease:
        if self.pinned is not None:
            return self.fleet.lease(bank=self.pinned[0], slot=self.pinned[1])
        for slot in self.fleet.slots:
            label = f"{slot.bank.name}:{slot.entry.slot}"
            if label in exclude or not reachable(service, slot.bank.region, slot.data):
                continue
            try:
                return self.fleet.lease(bank=slot.bank.name, slot=slot.entry.slot)
            except NoModemAvailable:
                continue
        raise NoModemAvailable(f"no ready modem for {service.sp_code}/{service.service_code}")

    def sim(self, slot: FleetModem) -> SimRef:
        ident = slot.identity
        msisdn = (ident.msisdn if ident else None) or slot.entry.msisdn
        if not msisdn:
            raise NoModemAvailable(
                f"{slot.bank.name}:{slot.entry.slot}: the SIM's number is unknown"
            )
        sim_id = upsert_sim(self.db, msisdn, bank=slot.bank.name, slot=slot.entry.slot)
        self.watch.register(msisdn, sim_id, slot.entry.port)
        abort_unfinished(self.db, sim_id)
        return SimRef(sim_id, msisdn)

    def probe(self, service: ServiceView, flow: Flow, attempts: int = 3) -> RunOutcome:
        exclude: set[str] = set()
        retry_of: int | None = None
        while True:
            with self.lease(service, exclude) as lease:
                sim = self.sim(lease.slot)
                self.console.rule(
                    f"{service.sp_code}/{service.service_code} {service.service_name} · "
                    f"{flow.name} · modem {modem_label(lease)}"
                )
                start = now()
                outcome = run_flow(self.env, flow, lease, sim, service, retry_of)
                self.watch.contact(sim.msisdn, service.sp_code, start, now())
            exclude.add(outcome.modem)
            retry_of = outcome.run_id
            attempts -= 1
            if outcome.state is not RunState.INFRA_FAILED or self.pinned or attempts <= 0:
                return outcome
            self.console.print(f"[yellow]modem fault ({outcome.error}); retrying on another modem")


@click.command("probe")
@click.argument("sp_code")
@click.argument("service_code", required=False)
@click.option("--flow", "flow_name", metavar="NAME", help="Run only this flow (e.g. decline).")
@click.option("--modem", "modem", metavar="BANK:SLOT", help="Use this modem only.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.pass_context
def probe_cmd(
    ctx: click.Context,
    sp_code: str,
    service_code: str | None,
    flow_name: str | None,
    modem: str | None,
    timeout: float,
) -> None:
    """Probe SP_CODE (all its services, or SERVICE_CODE) now."""
    pinned = _modem(modem)
    config = get_config(ctx)
    db = open_db(ctx)
    catalogue = list_services(db)
    try:
        flows = load_flows(config.paths.probes)
    except FlowError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    plan = _plan(_select(catalogue, sp_code, service_code), flows, flow_name)
    console = Console()
    sink = FleetSink()
    try:
        fleet = open_fleet(config, sink, timeout)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    outcomes: list[RunOutcome] = []
    try:
        prober = _Prober(db, config, fleet, console, catalogue, pinned)
        sink.bind(prober.watch)
        for service, flow in plan:
            outcomes.append(prober.probe(service, flow))
        watched = prober.watch.judge_all()
    except NoModemAvailable as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_INCOMPLETE)
    finally:
        fleet.close()
    _finish(ctx, console, outcomes, [f for w in watched for f in w.findings])


def _finish(
    ctx: click.Context, console: Console, outcomes: list[RunOutcome], other: list[Finding]
) -> None:
    findings = [f for o in outcomes for f in o.findings]
    if findings:
        console.print(findings_table(findings))
    if other:
        console.print(findings_table(other, "Also seen on the SIMs (other SPs)"))
    incomplete = [o for o in outcomes if not o.completed]
    for o in incomplete:
        click.echo(
            f"probe not completed: run {o.run_id} {o.flow}: {o.state.value}: {o.error}", err=True
        )
    if incomplete:
        ctx.exit(EXIT_INCOMPLETE)
    if findings:
        ctx.exit(EXIT_VIOLATIONS)
    console.print("[green]No violations found.")
