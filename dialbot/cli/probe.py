"""`dialbot probe SP_CODE [SERVICE_CODE]`: probe one SP now, with a live transcript.

Without --flow each service gets the standard flows for its billing type
(decline, then monthly or per_use). The transcript shows every message and
reading as it happens and, before each wait, what the probe waits for and
for how long (at `time_scale` 1 the windows are the real minutes an SP may
take on a real network; a terminal shows the time left). The command ends
with its findings — the SP's, then what else the SIMs received, then what a
dead process had left — and its exit status: 0 when the probes found
nothing against the SP, 1 when they found violations, 2 on a usage error,
3 when a probe could not be completed (no modem, modem faults, an internal
error: one line on the console, the details in dialbot.log). The watch is
judged and closed however the command ends, so no run is left `running`.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session, sessionmaker

from dialbot.cli._db import open_db
from dialbot.cli.common import command_log, fail, get_config, output_console
from dialbot.cli.waits import WaitDisplay, flow_wait_s, span
from dialbot.config import Config
from dialbot.db.catalogue import ServiceView, list_services
from dialbot.db.evidence import EventRow
from dialbot.db.models import RunState
from dialbot.db.owner import RunBeat
from dialbot.db.runs import upsert_sim
from dialbot.errors import ConfigError, FlowError
from dialbot.fleet import Fleet, FleetModem, Lease, NoModemAvailable
from dialbot.flows.loader import load_flows
from dialbot.flows.model import Flow
from dialbot.flows.record import now
from dialbot.flows.recovery import CutJudged, Recovery
from dialbot.flows.runner import ProbeEnv, RunOutcome, SimRef, modem_label, run_flow, service_info
from dialbot.flows.summary import findings_table, transcript_line
from dialbot.flows.sweep import FleetSink, flow_names, open_fleet, reachable
from dialbot.flows.watch import Watch, WatchResult
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
        fitting = [s for s in chosen if flow.fits(s.channel, s.billing)]
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
        waits: WaitDisplay,
    ) -> None:
        self.db = db
        self.fleet = fleet
        self.console = console
        self.pinned = pinned
        infos = tuple(service_info(s) for s in catalogue)
        self.watch = Watch(db, config.carrier, infos, grace_s=config.probe.time_scale * 120)
        self.recovery = Recovery(db, config.carrier, infos)
        self.recovered: list[CutJudged] = []

        def on_event(row: EventRow) -> None:
            waits.event()
            console.print(transcript_line(row), highlight=False)

        self.env = ProbeEnv(
            db,
            config.carrier,
            config.probe.time_scale,
            infos,
            self.watch.put,
            on_event=on_event,
            on_wait=waits.waiting,
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
        """The SIM in the slot, recorded; what dead processes left on it is taken over and
        judged (the runs of live processes, this one's watch included, are left alone)."""
        ident = slot.identity
        msisdn = (ident.msisdn if ident else None) or slot.entry.msisdn
        if not msisdn:
            raise NoModemAvailable(
                f"{slot.bank.name}:{slot.entry.slot}: the SIM's number is unknown"
            )
        sim_id = upsert_sim(self.db, msisdn, bank=slot.bank.name, slot=slot.entry.slot)
        self.watch.register(msisdn, sim_id, slot.entry.port)
        self.recovered.extend(self.recovery.recover(sim_id))
        return SimRef(sim_id, msisdn)

    def probe(self, service: ServiceView, flow: Flow, attempts: int = 3) -> RunOutcome:
        exclude: set[str] = set()
        retry_of: int | None = None
        while True:
            with self.lease(service, exclude) as lease:
                sim = self.sim(lease.slot)
                self.console.rule(
                    f"{escape(service.sp_code)}/{escape(service.service_code)} "
                    f"{escape(service.service_name)} · {flow.name} · modem {modem_label(lease)}"
                )
                start = now()
                outcome = run_flow(self.env, flow, lease, sim, service, retry_of)
                self.watch.contact(sim.msisdn, service.sp_code, start, now())
            exclude.add(outcome.modem)
            retry_of = outcome.run_id
            attempts -= 1
            if outcome.state is not RunState.INFRA_FAILED or self.pinned or attempts <= 0:
                return outcome
            self.console.print(f"[yellow]modem fault ({escape(outcome.error or '')}); "
                               "retrying on another modem")  # fmt: skip


@click.command("probe")
@click.argument("sp_code")
@click.argument("service_code", required=False)
@click.option("--flow", "flow_name", metavar="NAME", help="Run only this flow (e.g. decline).")
@click.option("--modem", "modem", metavar="BANK:SLOT", help="Use this modem only.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help="Seconds a modem may take to answer one command "
                   "(default: [modem] command_timeout, else 5).")  # fmt: skip
@click.pass_context
def probe_cmd(
    ctx: click.Context,
    sp_code: str,
    service_code: str | None,
    flow_name: str | None,
    modem: str | None,
    timeout: float | None,
) -> None:
    """Probe SP_CODE (all its services, or SERVICE_CODE) now.

    Exit status: 0 nothing found, 1 violations found, 2 usage error,
    3 a probe could not be completed.
    """
    pinned = _modem(modem)
    config = get_config(ctx)
    db = open_db(ctx)
    log_path = command_log(config)
    catalogue = list_services(db)
    try:
        flows = load_flows(config.paths.probes)
    except FlowError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    plan = _plan(_select(catalogue, sp_code, service_code), flows, flow_name)
    console = output_console()
    _announce(console, plan, config.probe.time_scale)
    sink = FleetSink()
    try:
        fleet = open_fleet(config, sink, timeout, db=db)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    except Exception as exc:  # the modems could not be opened: nothing was probed
        fail(ctx, exc, EXIT_INCOMPLETE, log_path)
    outcomes: list[RunOutcome] = []
    watched: list[WatchResult] = []
    error: BaseException | None = None
    beat = RunBeat(db).start()
    waits = WaitDisplay(console, config.probe.time_scale)
    prober: _Prober | None = None
    try:
        prober = _Prober(db, config, fleet, console, catalogue, pinned, waits)
        sink.bind(prober.watch)
        for service, flow in plan:
            outcomes.append(prober.probe(service, flow))
    except (Exception, KeyboardInterrupt) as exc:  # ended early: still close what it opened
        error = exc
    finally:
        waits.stop()
        if prober is not None:
            watched = prober.watch.close()  # no watch run outlives the command
        beat.stop()
        fleet.close()
    recovered = prober.recovered if prober is not None else []
    other = [f for w in watched for f in w.findings] + [f for r in recovered for f in r.findings]
    if isinstance(error, NoModemAvailable):
        _show(console, outcomes, other)
        click.echo(f"Error: {error}", err=True)
        ctx.exit(EXIT_INCOMPLETE)
    if isinstance(error, KeyboardInterrupt):
        _show(console, outcomes, other)
        click.echo("Error: interrupted; the probe was not completed", err=True)
        ctx.exit(EXIT_INCOMPLETE)
    if error is not None:
        _show(console, outcomes, other)
        fail(ctx, error, EXIT_INCOMPLETE, log_path)
    _finish(ctx, console, outcomes, other)


def _announce(console: Console, plan: list[tuple[ServiceView, Flow]], scale: float) -> None:
    """What the command will do and how long it may wait, before it starts."""
    longest = sum(flow_wait_s(flow) for _, flow in plan) * scale
    console.print(
        f"{len(plan)} run(s): {', '.join(f'{s.service_code} {f.name}' for s, f in plan)}; "
        f"their windows add up to at most {span(longest)} (time_scale {scale:g})",
        highlight=False,
    )
    if scale >= 1:
        console.print(
            "The windows are real minutes: on a real network an SP may take that long to "
            "answer, so the probe waits for it.",
            highlight=False,
        )


def _show(console: Console, outcomes: list[RunOutcome], other: list[Finding]) -> None:
    findings = [f for o in outcomes for f in o.findings]
    if findings:
        console.print(findings_table(findings))
    if other:
        console.print(findings_table(other, "Also seen on the SIMs (other SPs, earlier runs)"))


def _finish(
    ctx: click.Context, console: Console, outcomes: list[RunOutcome], other: list[Finding]
) -> None:
    _show(console, outcomes, other)
    findings = [f for o in outcomes for f in o.findings]
    incomplete = [o for o in outcomes if not o.completed]
    for o in incomplete:
        click.echo(
            f"probe not completed: run {o.run_id} {o.flow}: {o.state.value}: {o.error}", err=True
        )
    if incomplete:
        console.print(f"exit status {EXIT_INCOMPLETE}: a probe could not be completed")
        ctx.exit(EXIT_INCOMPLETE)
    if findings:
        console.print(f"exit status {EXIT_VIOLATIONS}: {len(findings)} violation(s) found")
        ctx.exit(EXIT_VIOLATIONS)
    console.print("[green]No violations found.[/] exit status 0")
