"""`marugoto up`: the whole stack with demo data, and nothing left behind after Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.cli import fetch_token
from shared.embedded_broker import free_port
from tests.e2e.processes import alive, descendants

pytestmark = pytest.mark.e2e

DEMO = 5


def up_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The environment of a `marugoto up` of its own: free ports, its own data dir, its own broker."""
    ports = {name: free_port() for name in ("intake", "router", "conference", "metrics")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARUGOTO_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # `up` starts its own embedded broker
    env.pop("DATABASE_URL", None)  # and uses its SQLite default
    env.update({f"MARUGOTO_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["MARUGOTO_DATA_DIR"] = str(tmp_path / "data")
    return env, ports


def test_up_treats_the_death_of_its_broker_as_fatal_and_says_so(tmp_path: Path) -> None:
    env, _ = up_env(tmp_path)
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--broker-port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        output = []
        for line in up.stdout:
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        children = descendants(up.pid)
        brokers = [pid for pid in children if "tansu" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        assert len(brokers) == 1, f"one embedded broker expected among {children}"
        os.kill(brokers[0], signal.SIGKILL)
        rest, _ = up.communicate(timeout=60)
        assert up.returncode != 0, "a dead broker is a failure, not a normal stop"
        assert "the embedded broker died and its data with it" in rest, "".join(output) + rest
        assert not [pid for pid in children if alive(pid)], "no service outlived the broker's death"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_up_runs_the_stack_with_demo_data_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    env, ports = up_env(tmp_path)
    broker_port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--demo", str(DEMO), "--broker-port", str(broker_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 120
        for line in up.stdout:
            output.append(line)
            if "demo consultations submitted" in line or time.monotonic() > deadline:
                break
        printed = "".join(output)
        assert f"{DEMO} demo consultations submitted" in printed, printed
        assert f"http://127.0.0.1:{ports['metrics']}/v1/indicators" in printed

        secrets = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
        token = fetch_token(f"http://127.0.0.1:{ports['intake']}", "operator", secrets["operator"])
        report = _wait_for_consultations(ports["metrics"], DEMO, token)
        assert report["municipality_code"] == "242080"
        # Half the demo is received at the general window (総合相談窓口), so M8 has numbers of its own.
        m8 = next(i for i in report["indicators"] if i["id"] == "M8")
        assert 0 < m8["value"] < DEMO, m8

        # Rebuild the indicators from the topics after the demo run: the same numbers.
        settled = _settled(ports["metrics"], token)
        rebuilt = subprocess.run(
            [sys.executable, "-m", "services.cli", "metrics", "rebuild"],
            env={**env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "rebuilt from" in rebuilt.stdout
        assert _indicators(ports["metrics"], token) == settled

        children = descendants(up.pid)
        assert len(children) >= 5, f"broker and four services expected, found {children}"
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
        output.append(rest)
        assert up.returncode == 0, "".join(output)
        assert "no service or broker process left running" in rest
        assert not [pid for pid in children if alive(pid)], "a process of `up` outlived it"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def _indicators(port: int, token: str) -> dict:  # type: ignore[type-arg]
    response = httpx.get(
        f"http://127.0.0.1:{port}/v1/indicators?municipality=242080",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    body: dict = response.json()  # type: ignore[type-arg]
    return body


def _settled(port: int, token: str, timeout_s: float = 60) -> dict:  # type: ignore[type-arg]
    """The indicators once two reads two seconds apart agree (the demo's events are all applied)."""
    deadline = time.monotonic() + timeout_s
    previous = _indicators(port, token)
    while time.monotonic() < deadline:
        time.sleep(2)
        current = _indicators(port, token)
        if current == previous:
            return current
        previous = current
    raise AssertionError("indicators never settled")


def _wait_for_consultations(port: int, expected: int, token: str, timeout_s: float = 60) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    body: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/indicators?municipality=242080",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        body = response.json()
        counts = {i["id"]: i["value"] for i in body["indicators"]}
        if counts["M8-全機関"] == expected and counts["OPS-DECISIONS"] == expected:
            return body
        time.sleep(0.3)
    raise AssertionError(f"demo consultations not all counted: {body}")
