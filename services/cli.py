"""The `marugoto` command: broker, database, services, the whole stack, demo data and route checks."""

import argparse
import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from shared import db, logs, migrations
from shared.settings import SERVICES, Settings, get_settings

APP_FACTORIES = {name: f"services.{name}.app" for name in SERVICES}


class Shutdown(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def _service_definition(name: str) -> Any:
    return importlib.import_module(APP_FACTORIES[name]).DEFINITION


def cmd_broker(args: argparse.Namespace) -> int:
    """Run the embedded broker in the foreground until Ctrl-C or SIGTERM."""
    from shared.embedded_broker import EmbeddedBroker

    settings = get_settings()
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, _raise_shutdown)  # also when started with SIGINT ignored (&)
    broker = EmbeddedBroker(
        port=args.port,
        partitions=args.partitions or settings.kafka_topic_partitions,
        topic_prefix=settings.kafka_topic_prefix,
    )
    broker.start()
    print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
    try:
        while broker.alive():
            time.sleep(0.5)
        print("the broker exited unexpectedly", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Shutdown):
        return 0
    finally:
        broker.stop()


def upgrade_databases(settings: Settings, services: Sequence[str] = SERVICES) -> None:
    """Bring every service's schema to its latest migration."""
    for name in services:
        engine = db.make_engine(settings, name)
        try:
            db.upgrade(engine, name)
        finally:
            engine.dispose()


def cmd_db(args: argparse.Namespace) -> int:
    """`marugoto db upgrade [--service S]`, `marugoto db revision --service S -m MESSAGE`."""
    if args.action == "revision":
        if not args.service or not args.message:
            print("db revision needs --service and -m", file=sys.stderr)
            return 2
        if migrations.revision(args.service, args.message) is None:
            print("the models match the latest migration: no revision written")
        return 0
    services = [args.service] if args.service else list(SERVICES)
    upgrade_databases(get_settings(), services)
    print(f"database up to date: {', '.join(services)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one service's HTTP API and consumers in this process."""
    import uvicorn

    settings = get_settings()
    logs.configure(settings.log_level, service=args.service)
    app = importlib.import_module(APP_FACTORIES[args.service]).create(settings)
    uvicorn.run(app, host=settings.host, port=args.port or settings.port(args.service), log_config=None)
    return 0


def cmd_agencies(args: argparse.Namespace) -> int:
    """Issue, list and revoke partner agencies' credentials (stored in intake's database)."""
    from services.intake import service as intake
    from shared.auth import Scope

    if args.action in {"add", "revoke"} and not args.id:
        print(f"agencies {args.action} needs --id", file=sys.stderr)
        return 2
    settings = get_settings()
    _service_definition("intake")
    engine = db.make_engine(settings, "intake")
    try:
        with db.transaction(engine) as session:
            if args.action == "add":
                scopes = [Scope(s.strip()) for s in args.scopes.split(",") if s.strip()]
                codes = [c.strip() for c in (args.municipalities or "").split(",") if c.strip()]
                if not codes and Scope.platform not in scopes:
                    print("agencies add needs --municipalities (or the platform scope)", file=sys.stderr)
                    return 2
                secret = intake.issue_credential(
                    session, agency_id=args.id, name=args.name or args.id, scopes=scopes, municipalities=codes
                )
                print(f"client_id={args.id}")
                print(f"client_secret={secret}")
                print("The secret is shown once and stored only as a hash; exchange it at POST /v1/token.")
            elif args.action == "revoke":
                if not intake.revoke_credential(session, args.id):
                    print(f"no active credential for {args.id}", file=sys.stderr)
                    return 1
                print(f"revoked {args.id}; tokens already issued expire within their lifetime")
            else:
                for credential in intake.list_credentials(session):
                    state = f"revoked {credential.revoked_at:%Y-%m-%d}" if credential.revoked_at else "active"
                    served = ",".join(credential.municipalities) or "-"
                    print(
                        f"{credential.agency_id}\t{credential.name}\t{','.join(credential.scopes)}\t{served}\t{state}"
                    )
    finally:
        engine.dispose()
    return 0


def cmd_personal_data(args: argparse.Namespace) -> int:
    """`marugoto personal-data rotate`: re-encrypt personal details under the first configured key."""
    from services.intake import service as intake
    from services.intake.app import vault_from

    settings = get_settings()
    _service_definition("intake")
    engine = db.make_engine(settings, "intake")
    try:
        with db.transaction(engine) as session:
            changed = intake.rotate_personal_data(session, vault_from(settings).cipher)
    finally:
        engine.dispose()
    print(f"re-encrypted {changed} personal field(s) under the first key")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """`marugoto metrics rebuild`: recompute the indicators from the topics' beginning."""
    from services.metrics.rebuild import rebuild

    settings = get_settings()
    _service_definition("metrics")
    applied = asyncio.run(rebuild(settings))
    for topic, count in applied.items():
        print(f"{topic}\t{count}")
    print(f"rebuilt from {sum(applied.values())} events")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """`marugoto retention preview|run`: the cases past their municipality's retention period, or erase them."""
    from sqlmodel import Session

    from services.intake import retention
    from services.intake.models import DirectoryInForce
    from shared.case_keys import CaseKeys
    from shared.directory import read_directory_files
    from shared.directory_in_force import DirectoriesInForce
    from shared.privacy_policy import DEFAULT_POLICY, IntakePolicy, policy_of

    settings = get_settings()
    _service_definition("intake")
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now().astimezone()
    if as_of.tzinfo is None:
        as_of = as_of.astimezone()
    policies: dict[str, IntakePolicy] = {
        code: policy_of(body) for code, (_directory, body) in read_directory_files(settings.directory_files).items()
    }
    engine = db.make_engine(settings, "intake")
    try:
        with Session(engine) as session:
            in_force = DirectoriesInForce(
                DirectoryInForce, lambda d, body: policies.__setitem__(d.municipality.code, policy_of(body))
            )
            in_force.load_stored(session)
        policy = lambda code: policies.get(code, DEFAULT_POLICY)  # noqa: E731
        if args.action == "preview":
            with Session(engine) as session:
                found = retention.due(session, policy, until=as_of)
            for entry in found:
                print(f"{entry.case_id}\t{entry.municipality_code}\t{entry.basis}\t{entry.erase_on.date()}")
            print(f"{len(found)} case(s) past their retention period by {as_of.isoformat()}")
        else:
            erased = retention.run_once(engine, CaseKeys.from_settings(settings), policy, as_of=as_of)
            print(f"erased {len(erased)} case(s) past their retention period by {as_of.isoformat()}")
    finally:
        engine.dispose()
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    """`marugoto dlq list|show|replay`: dead letters, their reasons, and replay after a fix."""
    from shared.deadletters import read_dead_letters, replay

    settings = get_settings()
    letters = asyncio.run(read_dead_letters(settings))
    if args.action == "list":
        for letter in letters:
            reason = letter.headers.get("x-dlq-reason", "")
            print(f"{letter.reference}\t{letter.headers.get('x-dlq-consumer', '')}\t{reason[:160]}")
        print(f"{len(letters)} dead letter(s)")
        return 0
    chosen = letters if args.all else [letter for letter in letters if letter.reference in set(args.reference)]
    missing = set(args.reference) - {letter.reference for letter in chosen}
    if missing:
        print(f"no such dead letter: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    if args.action == "show":
        for letter in chosen:
            print(letter.reference)
            for name, value in sorted(letter.headers.items()):
                print(f"  {name}: {value}")
            print(f"  key: {letter.key!r}")
            print(f"  value: {letter.value.decode(errors='replace')}")
        return 0
    sent = asyncio.run(replay(settings, chosen))
    print(f"replayed {sent} dead letter(s) to their original topics")
    return 0


DEMO_AGENCIES = {
    # A partner agency that submits and works its referrals (名張市社会福祉協議会), the lead's 推進員 at the
    # general window (総合相談窓口, which receives consultations too), an operator, and the conference
    # service's own client (it reads the indicators for agendas).
    "nabari-shakyo": ("名張市社会福祉協議会", "submit,coordinator,read_own"),
    "nabari-houkatsu": ("名張市地域包括支援センター (推進員)", "submit,coordinator,read_own"),
    "operator": ("Marugoto operator", "operator,read_own,coordinator,admin"),
    # A component of the platform: it fetches every served municipality's indicators for its agendas.
    "svc-conference": ("conference service", "operator,platform"),
}


def _demo_credentials(settings: Settings) -> dict[str, str]:
    """Issue fresh credentials to the demo agencies, serving the configured municipalities; returns their secrets."""
    from services.intake import service as intake
    from shared.auth import Scope
    from shared.directory import read_directory_files

    municipalities = sorted(read_directory_files(settings.directory_files))
    engine = db.make_engine(settings, "intake")
    try:
        with db.transaction(engine) as session:
            return {
                agency_id: intake.issue_credential(
                    session,
                    agency_id=agency_id,
                    name=name,
                    scopes=[Scope(s) for s in scopes.split(",")],
                    municipalities=municipalities,
                )
                for agency_id, (name, scopes) in DEMO_AGENCIES.items()
            }
    finally:
        engine.dispose()


def fetch_token(intake_url: str, client_id: str, client_secret: str) -> str:
    """A bearer token for an agency's client credentials."""
    response = httpx.post(
        f"{intake_url}/v1/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def seed_roster(intake_url: str, token: str, directory_file: Path) -> list[str]:
    """Name the demo municipality's 支援会議 members from today (an admin's PUT); returns them."""
    from services.demo import demo_municipality, support_meeting_members
    from shared.calendar import JST

    code, _ = demo_municipality(directory_file)
    today = datetime.now(JST).date().isoformat()
    members = support_meeting_members(directory_file)
    with httpx.Client(base_url=intake_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        for agency_id in members:
            client.put(
                f"/v1/municipalities/{code}/support-meeting-roster/{agency_id}",
                json={"member_from": today, "confidentiality_acknowledged": True},
            ).raise_for_status()
    return members


def cmd_route_check(args: argparse.Namespace) -> int:
    """Run every scenario of a routing file through the router's decision code."""
    from services.router.scenarios import route_check

    return route_check(Path(args.file), sys.stdout)


def wait_ready(urls: dict[str, str], timeout_s: float, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Wait until every service answers /readyz with 200, or fail naming the one that did not."""
    deadline = time.monotonic() + timeout_s
    pending = dict(urls)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for name, url in list(pending.items()):
                if processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited with status {processes[name].returncode} during start-up")
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s:.0f} s: {', '.join(pending)}")
            time.sleep(0.2)


def submit_demo(
    intake_url: str, tokens: Sequence[str], directory_file: Path, count: int, *, out: Any = sys.stderr
) -> int:
    """Submit `count` demo consultations with a progress bar, by the agencies of `tokens` in turn; returns
    how many were accepted."""
    from services.demo import consultations

    accepted = 0
    width = 30
    with httpx.Client(base_url=intake_url, timeout=10.0) as client:
        for index, body in enumerate(consultations(directory_file, count), start=1):
            token = tokens[index % len(tokens)]
            response = client.post("/v1/consultations", json=body, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 202:
                accepted += 1
            else:
                print(f"\nrejected: {response.status_code} {response.text}", file=out)
            done = width * index // count
            print(f"\rdemo consultations [{'#' * done}{'.' * (width - done)}] {index}/{count}", end="", file=out)
    print(file=out, flush=True)
    return accepted


def _demo_directory(settings: Settings) -> Path:
    from shared.directory import demo_directory_path

    return settings.directory_files[0] if settings.directory_files else demo_directory_path()


def cmd_demo(args: argparse.Namespace) -> int:
    """Submit demo consultations to a running intake service."""
    settings = get_settings()
    url = args.intake_url or settings.base_url("intake")
    token = fetch_token(url, args.client_id, args.client_secret)
    accepted = submit_demo(url, [token], _demo_directory(settings), args.count)
    print(f"{accepted} of {args.count} consultations accepted by {url}")
    return 0 if accepted == args.count else 1


def _spawn(argv: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    from shared.processes import die_with_parent

    output = open(log_file, "ab")  # noqa: SIM115 - handed to the child for its lifetime
    return subprocess.Popen(
        argv, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
    )


def _stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float = 15.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cmd_up(args: argparse.Namespace) -> int:
    """Start the broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and the four services; stop all on exit."""
    from shared.devsecrets import ensure_dev_secrets
    from shared.embedded_broker import EmbeddedBroker

    settings = get_settings()
    if not settings.kafka_bootstrap_servers and settings.kafka_security_protocol != "PLAINTEXT":
        print(
            f"MARUGOTO_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} applies to an external Kafka "
            "(KAFKA_BOOTSTRAP_SERVERS); the embedded broker is plaintext on loopback only",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, _raise_shutdown)  # also when started with SIGINT ignored (&)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auth_private_key_file is None or not settings.personal_data_keys:
        # Development keys, kept under the data dir; a deployment configures its own.
        os.environ.update(ensure_dev_secrets(settings.data_dir / "secrets"))
        settings = get_settings()
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    broker: EmbeddedBroker | None = None
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        env = dict(os.environ)
        if not settings.kafka_bootstrap_servers:
            broker = EmbeddedBroker(
                port=args.broker_port,
                partitions=settings.kafka_topic_partitions,
                topic_prefix=settings.kafka_topic_prefix,
                log_file=log_dir / "broker.log",
            )
            broker.start()
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
            print(f"embedded Kafka broker (memory storage) on {broker.bootstrap_servers}", flush=True)
        else:
            asyncio.run(_ensure_topics(settings))
        upgrade_databases(settings)
        print(f"database: {'PostgreSQL' if settings.database_url else f'SQLite under {settings.data_dir}/'}")
        secrets = _demo_credentials(settings)
        credentials_file = settings.data_dir / "demo-credentials.json"
        credentials_file.write_text(json.dumps(secrets, indent=2))
        credentials_file.chmod(0o600)
        for name in SERVICES:
            argv = [sys.executable, "-m", "services.cli", "serve", name]
            own_env = dict(env)
            if name == "conference":
                own_env.update(
                    MARUGOTO_SERVICE_CLIENT_ID="svc-conference",
                    MARUGOTO_SERVICE_CLIENT_SECRET=secrets["svc-conference"],
                )
            processes[name] = _spawn(argv, own_env, log_dir / f"{name}.log")
        urls = {name: settings.base_url(name) for name in SERVICES}
        wait_ready(urls, args.ready_timeout, processes)
        print("Marugoto is up. Open:", flush=True)
        print(f"  intake API      {urls['intake']}/docs")
        print(f"  router API      {urls['router']}/docs   (decisions, referral queues)")
        print(f"  console         {urls['router']}/console   (coordinators: sign in with an agency's credentials)")
        print(f"  conference API  {urls['conference']}/v1/meetings")
        print(f"  indicators      {urls['metrics']}/v1/indicators?municipality=242080")
        operator_token = fetch_token(urls["intake"], "operator", secrets["operator"])
        print(f"  dashboard       {urls['metrics']}/dashboard#municipality=242080&token={operator_token}")
        print("                  (the operator token in the link lasts 15 minutes)")
        print(f"  AsyncAPI        {urls['router']}/asyncapi.json (one per service)")
        print(f"  logs            {log_dir}/")
        print(f"  credentials     {credentials_file} (demo agencies: {', '.join(secrets)})")
        print("  a token:        curl -d grant_type=client_credentials -d client_id=operator \\")
        print(f"                    -d client_secret=$(jq -r .operator {credentials_file}) {urls['intake']}/v1/token")
        print("Press Ctrl-C to stop everything.", flush=True)
        if args.demo:
            members = seed_roster(urls["intake"], operator_token, _demo_directory(settings))
            print(f"支援会議 roster of the demo municipality: {', '.join(members)}", flush=True)
            # The 社協 and the general window (so that M8, the window's consultations, has numbers too).
            tokens = [
                fetch_token(urls["intake"], agency, secrets[agency]) for agency in ("nabari-shakyo", "nabari-houkatsu")
            ]
            accepted = submit_demo(urls["intake"], tokens, _demo_directory(settings), args.demo, out=sys.stdout)
            print(f"{accepted} demo consultations submitted; watch them at the URLs above.", flush=True)
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping everything", file=sys.stderr)
                    return 1
            if broker is not None and not broker.alive():
                # Memory storage is gone with the broker: services cannot carry on against a new one.
                print("the embedded broker died and its data with it; stopping everything", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except (KeyboardInterrupt, Shutdown):
        print("\nstopping…", flush=True)
        return 0
    finally:
        _stop_all(list(processes.values()))
        if broker is not None:
            broker.stop()
        print("stopped: no service or broker process left running", flush=True)


async def _ensure_topics(settings: Settings) -> list[str]:
    from shared.kafka import ensure_configured_topics

    return await ensure_configured_topics(settings)


def cmd_kafka(args: argparse.Namespace) -> int:
    """`marugoto kafka create-topics`: create the missing topics on the configured (external) Kafka."""
    from aiokafka.errors import KafkaError

    from shared.kafka import BrokerNotConfigured
    from shared.topics import ALL_TOPICS

    overrides: dict[str, Any] = {}
    if args.partitions is not None:
        overrides["kafka_topic_partitions"] = args.partitions
    if args.replication_factor is not None:
        overrides["kafka_replication_factor"] = args.replication_factor
    settings = Settings(**overrides)
    try:
        created = asyncio.run(_ensure_topics(settings))
    except BrokerNotConfigured as error:
        print(error, file=sys.stderr)
        return 2
    except (KafkaError, TimeoutError, OSError) as error:
        print(f"could not create the topics on {settings.kafka_bootstrap_servers}: {error!r}", file=sys.stderr)
        return 1
    for topic in created:
        print(f"created\t{topic}")
    print(
        f"{len(created)} topic(s) created, {len(ALL_TOPICS) - len(created)} already there "
        f"(partitions {settings.kafka_topic_partitions}, replication factor {settings.kafka_replication_factor})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `marugoto`."""
    parser = argparse.ArgumentParser(prog="marugoto", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    broker = sub.add_parser("broker", help="run the embedded Kafka-protocol broker")
    broker.add_argument("--port", type=int, default=None, help="default: a free port")
    broker.add_argument("--partitions", type=int, default=None)
    broker.set_defaults(func=cmd_broker)

    database = sub.add_parser("db", help="database schema")
    database.add_argument("action", choices=["upgrade", "revision"], help="revision: a new migration from the models")
    database.add_argument("--service", choices=SERVICES, default=None)
    database.add_argument("-m", "--message", default=None, help="what the revision changes (revision)")
    database.set_defaults(func=cmd_db)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    kafka = sub.add_parser("kafka", help="topics on an external Kafka (KAFKA_BOOTSTRAP_SERVERS)")
    kafka.add_argument("action", choices=["create-topics"], help="create every missing topic and its .dlq")
    kafka.add_argument("--partitions", type=int, default=None, help="default: MARUGOTO_KAFKA_TOPIC_PARTITIONS")
    kafka.add_argument(
        "--replication-factor", type=int, default=None, help="default: MARUGOTO_KAFKA_REPLICATION_FACTOR"
    )
    kafka.set_defaults(func=cmd_kafka)

    up = sub.add_parser("up", help="run the broker and all four services, with demo data")
    up.add_argument("--demo", type=int, default=60, metavar="N", help="demo consultations to submit (0: none)")
    up.add_argument("--broker-port", type=int, default=None)
    up.add_argument("--ready-timeout", type=float, default=90.0)
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser("demo", help="submit demo consultations to a running intake")
    demo.add_argument("--count", type=int, default=60)
    demo.add_argument("--intake-url", default=None)
    demo.add_argument("--client-id", required=True, help="an agency with the submit scope")
    demo.add_argument("--client-secret", required=True)
    demo.set_defaults(func=cmd_demo)

    agencies = sub.add_parser("agencies", help="partner agencies' credentials")
    agencies.add_argument("action", choices=["add", "list", "revoke"])
    agencies.add_argument("--id", help="agency id (add, revoke)")
    agencies.add_argument("--name", default=None)
    agencies.add_argument(
        "--scopes",
        default="submit,read_own",
        help="comma-separated: submit,read_own,coordinator,operator,admin,platform",
    )
    agencies.add_argument(
        "--municipalities",
        default=None,
        help="comma-separated municipality codes the credential serves (add; not needed with the platform scope)",
    )
    agencies.set_defaults(func=cmd_agencies)

    personal = sub.add_parser("personal-data", help="personal details stored by intake")
    personal.add_argument("action", choices=["rotate"], help="re-encrypt under the first key")
    personal.set_defaults(func=cmd_personal_data)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay after the cause is fixed")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument("reference", nargs="*", help="<dlq topic>:<partition>:<offset>, as `list` prints")
    dlq.add_argument("--all", action="store_true", help="every dead letter")
    dlq.set_defaults(func=cmd_dlq)

    retention = sub.add_parser("retention", help="保存期間: cases past their retention period")
    retention.add_argument(
        "action", choices=["preview", "run"], help="preview: list them; run: erase them now (the daily job's work)"
    )
    retention.add_argument(
        "--as-of",
        help="count periods as of this ISO date-time instead of now (a drill: what a later run will erase)",
    )
    retention.set_defaults(func=cmd_retention)

    metrics = sub.add_parser("metrics", help="the metrics service's data")
    metrics.add_argument("action", choices=["rebuild"], help="recompute everything from the topics' beginning")
    metrics.set_defaults(func=cmd_metrics)

    check = sub.add_parser("route-check", help="run a routing scenario file")
    check.add_argument("file")
    check.set_defaults(func=cmd_route_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `marugoto` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except migrations.UnversionedSchema as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
