"""`python -m bench [--quick] [--out bench/results/latest.json]`: Marugoto against same-run baselines.

See bench/README.md for what each ratio means.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import throughput as tp
from bench import web
from bench.feed import FanOut, decoded, produce_consultations
from bench.infra import Infra, machine_facts
from shared import db, topics
from shared.runtime import tune_collector
from shared.settings import Settings

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (1000, 4000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, about 5 minutes on 2 cores")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"), help="JSON results file")
    parser.add_argument(
        "--sizes",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=None,
        help="event counts for the router/metrics runs, smallest first (default 10000,100000,1000000; "
        f"--quick {','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent HTTP clients for the intake measure")
    parser.add_argument("--intake-seconds", type=float, default=None, help="measured window per intake run")
    parser.add_argument("--e2e-rate", type=float, default=20.0, help="offered load (requests/s) for the latency run")
    parser.add_argument("--e2e-seconds", type=float, default=None, help="how long the offered load lasts")
    parser.add_argument("--stall-seconds", type=float, default=60.0, help="give a run up when nothing moves this long")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs, keys and broker log in /tmp")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


async def consumer_runs(infra: Infra, n: int, stall_s: float) -> dict[str, Any]:
    """Router and metrics vs their bare baselines, all on the same `n` pre-produced events."""
    from services.metrics import app as metrics_app
    from services.router import app as router_app

    prefix = await infra.new_prefix()
    settings = infra.settings(prefix)
    infra.reset_database(settings, ("router", "metrics"))
    source = prefix + topics.CONSULTATION_RECEIVED
    produced_s = await produce_consultations(infra.bootstrap, source, n)
    say(f"  {n} ConsultationReceived produced in {produced_s:.1f} s")

    bare_consume = await tp.bare_consume(infra.bootstrap, [source], n, stall_s=stall_s)
    say(f"  bare consume: {_rate(bare_consume.per_second)}")
    decoding_consume = await tp.bare_consume(infra.bootstrap, [source], n, stall_s=stall_s, inspect=decoded)
    say(f"  bare consume, each event decoded: {_rate(decoding_consume.per_second)}")
    # Metrics runs before the router, so the only events on its eight topics are these n.
    metrics, _ = await tp.run_service(
        metrics_app.create(settings), settings, "metrics.processed_event", n, stall_s=stall_s
    )
    say(f"  metrics consumer: {_rate(metrics.per_second)} {metrics.note}")
    metrics_rows = bookkeeping(settings, "metrics")
    say(f"  metrics exactly-once bookkeeping: {metrics_rows}")

    sink = await infra.create_topic(prefix + "bench.passthrough")
    passthrough = await tp.bare_passthrough(infra.bootstrap, source, sink, n, stall_s=stall_s)
    say(f"  bare consume→produce: {_rate(passthrough.per_second)}")
    router, published = await tp.run_service(
        router_app.create(settings), settings, "router.decision", n, stall_s=stall_s, outbox="router.outbox"
    )
    say(f"  router consumer: {_rate(router.per_second)} {router.note}")
    router_rows = bookkeeping(settings, "router")
    say(f"  router exactly-once bookkeeping: {router_rows}")
    if published is not None:
        say(f"  router, decided and every event published: {_rate(published.per_second)} {published.note}")
    # The reference produces as many events per consultation as the router just did.
    per_decision = (published.published_events or 0) / n if published is not None else 0.0
    fan_out = FanOut(per_decision or 1.0)
    fan_out_sink = await infra.create_topic(prefix + "bench.passthrough.fan_out")
    reference = await tp.bare_passthrough(infra.bootstrap, source, fan_out_sink, n, stall_s=stall_s, transform=fan_out)
    say(f"  bare consume→produce, decoded, {fan_out.per_record:.2f} events encoded each: {_rate(reference.per_second)}")
    return {
        "events": n,
        "router": router.to_json(),
        "router_published": None if published is None else published.to_json(),
        "router_baseline_passthrough": passthrough.to_json(),
        "router_reference_fan_out": reference.to_json() | {"events_per_record": fan_out.per_record},
        "metrics": metrics.to_json(),
        "metrics_baseline_consume": bare_consume.to_json(),
        "metrics_reference_decoding_consume": decoding_consume.to_json(),
        "bookkeeping_rows": {"router": router_rows, "metrics": metrics_rows},
    }


def bookkeeping(settings: Settings, service: str) -> dict[str, int]:
    """The rows a service's exactly-once bookkeeping holds after the run (shared/inbox.py): its positions,
    the applied ids inside the dedup window, and what is left of those once the window has passed (the
    pruning the service does on its own, run here at once)."""
    from services.metrics import models as metrics_models
    from services.router import models as router_models
    from shared.inbox import prune

    inbox = {"router": router_models.RouterProcessedEvent, "metrics": metrics_models.MetricsProcessedEvent}[service]
    engine = db.make_engine(settings, service)
    try:
        with engine.connect() as connection:
            positions = connection.execute(text(f"SELECT count(*) FROM {service}.consumer_position")).scalar_one()
            ids = connection.execute(text(f"SELECT count(*) FROM {service}.processed_event")).scalar_one()
        prune(engine, inbox, window_s=0.0)
        with engine.connect() as connection:
            left = connection.execute(text(f"SELECT count(*) FROM {service}.processed_event")).scalar_one()
    finally:
        engine.dispose()
    return {"consumer_position": positions, "processed_event_in_window": ids, "processed_event_after_window": left}


async def intake_runs(infra: Infra, concurrency: int, seconds: float) -> dict[str, Any]:
    prefix = await infra.new_prefix()
    settings = infra.settings(prefix)
    infra.reset_database(settings, ("intake",))
    env = infra.env(prefix)
    headers = web.partner_headers(infra.secrets["MARUGOTO_AUTH_PRIVATE_KEY_FILE"])
    async with web.Process.bare(env, infra.database_url, infra.workdir) as bare:
        baseline = await web.closed_loop(bare.url, {}, concurrency=concurrency, duration_s=seconds, warmup_s=2)
    say(f"  bare FastAPI + INSERT: {_rate(baseline['per_second'])}")
    async with web.Process.service("intake", env, infra.workdir) as intake:
        ours = await web.closed_loop(intake.url, headers, concurrency=concurrency, duration_s=seconds, warmup_s=2)
    say(f"  intake POST /v1/consultations: {_rate(ours['per_second'])} statuses {ours['statuses']}")
    return {"intake": ours, "baseline_bare_fastapi_insert": baseline}


async def e2e_runs(infra: Infra, rate: float, seconds: float) -> dict[str, Any]:
    prefix = await infra.new_prefix()
    settings = infra.settings(prefix)
    infra.reset_database(settings, ("intake", "router"))
    rt_topic = await infra.create_topic(prefix + "bench.roundtrip")
    baseline = await web.broker_round_trip(infra.bootstrap, rt_topic, rate=rate, duration_s=seconds)
    say(f"  broker round trip p50 {_ms(baseline['p50_ms'])} p99 {_ms(baseline['p99_ms'])}")
    env = infra.env(prefix)
    headers = web.partner_headers(infra.secrets["MARUGOTO_AUTH_PRIVATE_KEY_FILE"])
    async with (
        web.Process.service("router", env, infra.workdir),
        web.Process.service("intake", env, infra.workdir) as intake,
    ):
        ours = await web.end_to_end(
            intake.url,
            headers,
            infra.bootstrap,
            prefix + topics.AGENCY_FEED,
            rate=rate,
            duration_s=seconds,
            drain_s=max(60.0, 3 * seconds),
        )
    say(f"  intake→agency feed p50 {_ms(ours['p50_ms'])} p99 {_ms(ours['p99_ms'])} missing {ours['missing_on_feed']}")
    return {"end_to_end": ours, "baseline_broker_round_trip": baseline}


def _rate(value: float | None) -> str:
    return "unfinished" if value is None else f"{value:,.1f}/s"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or baseline is None or baseline == 0:
        return None
    return ours / baseline


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table: measure | ours | baseline | ratio | target, one row per figure."""
    rows: list[dict[str, Any]] = []

    def row(measure: str, unit: str, ours: Any, baseline: Any, target: str, ok: Any = None, note: str = "") -> None:
        r = ratio(ours, baseline)
        rows.append(
            {
                "measure": measure,
                "unit": unit,
                "ours": ours,
                "baseline": baseline,
                "ratio": r,
                "target": target,
                "met": None if r is None or ok is None else bool(ok(r)),
                "note": note,
            }
        )

    runs = results.get("consumers", [])
    if runs:
        first = runs[0]
        n = first["events"]
        reference = first["router_reference_fan_out"]
        row(
            f"1 router decisions/s vs 1r reference ({n:,} events)",
            "/s",
            first["router"]["per_second"],
            reference["per_second"],
            "≥ 0.5",
            lambda r: r >= 0.5,
            "baseline: the 1r reference (decode, encode and produce as many events); " + first["router"]["note"],
        )
        published = first.get("router_published") or {}
        row(
            f"1 router decided and published/s vs 1r reference ({n:,} events)",
            "/s",
            published.get("per_second"),
            reference["per_second"],
            "≥ 0.5",
            lambda r: r >= 0.5,
            "to the empty outbox: referrals and every other event on Kafka; " + published.get("note", ""),
        )
        row(
            f"3 metrics events/s vs 3r reference ({n:,} events)",
            "/s",
            first["metrics"]["per_second"],
            first["metrics_reference_decoding_consume"]["per_second"],
            "≥ 0.5",
            lambda r: r >= 0.5,
            "baseline: the 3r reference (consume, each event decoded); " + first["metrics"]["note"],
        )
        # What the event contract alone costs: the least work of any consumer that reads the events.
        reference = first["router_reference_fan_out"]
        row(
            f"1r reference: consume→produce, each decoded, {reference['events_per_record']:.1f} events encoded"
            f" and produced ({n:,} events)",
            "/s",
            reference["per_second"],
            first["router_baseline_passthrough"]["per_second"],
            "(info)",
            None,
            "decides and stores nothing: what decoding and producing alone leave for a router that publishes as much",
        )
        row(
            f"3r reference: consume, each event decoded ({n:,} events)",
            "/s",
            first["metrics_reference_decoding_consume"]["per_second"],
            first["metrics_baseline_consume"]["per_second"],
            "(info)",
            None,
            "applies and stores nothing: what validating the events alone leaves for any consumer of them",
        )
    if intake := results.get("intake"):
        row(
            f"2 intake POST /v1/consultations req/s (c={intake['intake']['concurrency']})",
            "/s",
            intake["intake"]["per_second"],
            intake["baseline_bare_fastapi_insert"]["per_second"],
            "≥ 0.8",
            lambda r: r >= 0.8,
            "baseline: bare FastAPI + one INSERT",
        )
    if e2e := results.get("e2e"):
        ours, base = e2e["end_to_end"], e2e["baseline_broker_round_trip"]
        note = f"{ours['rate_per_s']:g} req/s; missing on feed {ours['missing_on_feed']}"
        row("4 e2e intake→agency feed p50", "ms", ours["p50_ms"], base["p50_ms"], "(info)", None, note)
        row(
            "4 e2e intake→agency feed p99",
            "ms",
            ours["p99_ms"],
            base["p99_ms"],
            "≤ 2×",
            lambda r: r <= 2,
            "baseline: broker produce→consume round trip",
        )
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        for name in ("router", "metrics"):
            for run in runs[1:]:
                last = run is large
                row(
                    f"5 {name} scaling {run['events']:,} vs {small['events']:,}",
                    "/s",
                    run[name]["per_second"],
                    small[name]["per_second"],
                    "≥ 0.9" if last else "(info)",
                    (lambda r: r >= 0.9) if last else None,
                    run[name]["note"],
                )
    for run in runs:
        for name, counts in (run.get("bookkeeping_rows") or {}).items():
            rows.append(
                {
                    "measure": f"6 {name} exactly-once bookkeeping rows after {run['events']:,} events",
                    "unit": "rows",
                    "ours": counts["consumer_position"] + counts["processed_event_after_window"],
                    "baseline": run["events"],
                    "ratio": None,
                    "target": "∝ partitions",
                    "met": None,
                    "note": f"{counts['consumer_position']} positions; {counts['processed_event_in_window']:,} ids "
                    f"inside the dedup window, {counts['processed_event_after_window']} once it has passed",
                }
            )
    return rows


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "unfinished"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "rows":
        return f"{value:,.0f} rows"
    return f"{value:,.1f}/s"


def render(rows: list[dict[str, Any]], facts: dict[str, Any], elapsed_s: float, missing: list[str]) -> str:
    header = ("measure", "ours", "baseline", "ratio", "target", "met")
    lines = [
        [
            r["measure"],
            fmt(r["ours"], r["unit"]),
            fmt(r["baseline"], r["unit"]),
            "—" if r["ratio"] is None else f"{r['ratio']:.4g}",
            r["target"],
            "—" if r["met"] is None else ("yes" if r["met"] else "NO"),
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.append("")
    out.append(
        f"machine: {facts['cpu_count']} CPU × {facts['cpu_model']}, {facts['memory_gb']} GB, "
        f"Python {facts['python']}; run took {elapsed_s:.0f} s; load average at start/end "
        f"{facts['loadavg_at_start'][0]:.1f}/{facts['loadavg_at_end'][0]:.1f} (other work on the machine skews ratios)"
    )
    if missing:
        out.append("not measured: " + "; ".join(missing))
    return "\n".join(out)


async def run(args: argparse.Namespace, infra: Infra, results: dict[str, Any], missing: list[str]) -> None:
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    intake_s = args.intake_seconds or (8.0 if args.quick else 30.0)
    e2e_s = args.e2e_seconds or (8.0 if args.quick else 60.0)
    results["consumers"] = []
    # The router and metrics apps run in this process and set its garbage collector as every service
    # process does; the baselines beside them run under the same setting from the start.
    tune_collector(infra.settings(""))

    async def step(name: str, coro: Any) -> Any:
        say(name)
        try:
            return await coro
        except Exception as exc:
            missing.append(f"{name}: {exc!r}")
            results.setdefault("errors", []).append({"step": name, "error": traceback.format_exc()})
            say(f"  FAILED: {exc!r}")
            return None

    started = time.perf_counter()
    if first := await step(
        f"router and metrics consumers, {sizes[0]:,} events", consumer_runs(infra, sizes[0], args.stall_seconds)
    ):
        results["consumers"].append(first)
    if (per_event := (time.perf_counter() - started) / sizes[0]) and len(sizes) > 1:
        rest = sum(sizes[1:]) * per_event
        say(
            f"scaling runs {', '.join(f'{s:,}' for s in sizes[1:])} will take about {rest / 60:,.0f} min "
            "at the rate just measured" + (" — 1M events takes very long" if max(sizes) >= 1_000_000 else "")
        )
    results["intake"] = await step("intake vs bare FastAPI", intake_runs(infra, args.concurrency, intake_s))
    results["e2e"] = await step(f"end-to-end latency at {args.e2e_rate:g} req/s", e2e_runs(infra, args.e2e_rate, e2e_s))
    for n in sizes[1:]:
        if more := await step(
            f"router and metrics consumers, {n:,} events", consumer_runs(infra, n, args.stall_seconds)
        ):
            results["consumers"].append(more)
        else:
            missing.append(f"scaling at {n:,} events")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    if not args.quick and max(sizes) >= 1_000_000:
        say(
            "WARNING: the full run pushes 1,000,000 events through the router and metrics; this takes a long "
            "time (about an hour on 2 cores, more on a slower machine). Use --quick or --sizes for a shorter run."
        )
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "mode": "quick" if args.quick else "full",
        "machine": facts,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} | {"sizes": sizes},
    }
    missing: list[str] = []
    results["machine"]["loadavg_at_start"] = os.getloadavg()
    started = time.perf_counter()
    with Infra(keep_workdir=args.keep_workdir) as infra:
        say(f"fresh embedded broker at {infra.bootstrap}, database {infra.database}, work dir {infra.workdir}")
        try:
            asyncio.run(run(args, infra, results, missing))
        except KeyboardInterrupt:
            missing.append("interrupted")
    elapsed = time.perf_counter() - started
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    rows = build_rows(results)
    results |= {"rows": rows, "not_measured": missing, "elapsed_s": elapsed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    print(render(rows, facts, elapsed, missing))
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
