"""The lock and the commands that install from it: what the image, CI and `make setup` get is what was locked.

requirements.lock pins the runtime (the image installs it); requirements-test.lock pins the runtime and the
test tools (CI and every developer's .venv). Both come from pyproject.toml through `make lock`.
"""

import re
import shlex
import tomllib
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
REGENERATE = "run `make lock` after changing the dependencies in pyproject.toml"


@cache
def pinned(lock: Path) -> dict[str, tuple[str, int]]:
    """The lock's pins as {canonical name: (version, number of hashes)}."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in lock.read_text().replace("\\\n", " ").splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", entry)
        assert match, f"{lock.name}: not a pinned requirement with hashes: {entry[:80]}"
        name, version, hashes = match.groups()
        pins[canonicalize_name(name)] = (version, hashes.count("--hash="))
    return pins


def declared() -> tuple[list[Requirement], list[Requirement]]:
    """pyproject.toml's runtime dependencies and its `test` extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(text) for text in project["dependencies"]]
    test = [Requirement(text) for text in project["optional-dependencies"]["test"]]
    return runtime, test


def test_every_locked_requirement_is_pinned_with_its_hashes() -> None:
    for lock in (RUNTIME_LOCK, TEST_LOCK):
        pins = pinned(lock)
        assert pins, f"{lock.name} pins nothing"
        assert all(hashes for _, hashes in pins.values()), f"{lock.name}: every pin carries its hashes"


def test_the_locks_satisfy_pyproject() -> None:
    runtime, test = declared()
    for lock, requirements in ((RUNTIME_LOCK, runtime), (TEST_LOCK, runtime + test)):
        pins = pinned(lock)
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement.name} is not in {lock.name}: {REGENERATE}"
            version = pins[name][0]
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock.name} pins {requirement.name}=={version}, outside {requirement.specifier}: {REGENERATE}"
            )


def test_the_runtime_lock_is_the_runtime_part_of_the_test_lock() -> None:
    """Tests run on the very versions the image ships."""
    runtime, test = pinned(RUNTIME_LOCK), pinned(TEST_LOCK)
    differing = {name: (version, test.get(name, ("missing",))[0]) for name, (version, _) in runtime.items()}
    assert {name: pair for name, pair in differing.items() if pair[0] != pair[1]} == {}, REGENERATE
    assert not {canonicalize_name(r.name) for r in declared()[1]} & set(runtime), "no test tool in the image"


def test_the_locks_name_no_index_or_local_path() -> None:
    """The lock works on any machine that reaches PyPI: no index, mirror or wheel folder of ours is in it."""
    for lock in (RUNTIME_LOCK, TEST_LOCK):
        options = [line for line in lock.read_text().splitlines() if line.startswith("-") and "--hash" not in line]
        assert options == [], f"{lock.name}: {options}"
        assert "file:" not in lock.read_text()


def _recipe(makefile: str, target: str) -> list[str]:
    """The commands of a Makefile target (tab-indented lines after `target:`)."""
    lines = makefile.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_setup_installs_the_test_lock_and_then_only_the_project() -> None:
    makefile = (ROOT / "Makefile").read_text()
    setup = _recipe(makefile, "$(VENV)/.installed")
    installs = [line for line in setup if " install " in line]
    assert installs == [
        "$(BIN)/pip install --require-hashes -r requirements-test.lock",
        "$(BIN)/pip install --no-deps -e .",
    ]
    assert re.search(r"^\$\(VENV\)/\.installed: requirements-test\.lock pyproject\.toml$", makefile, re.M), (
        "a changed lock rebuilds .venv"
    )
    for target in ("up", "test", "lint", "bench"):
        assert re.search(rf"^{target}: setup$", makefile, re.M), f"make {target} runs on the locked .venv"
    assert _recipe(makefile, "test") == ["$(BIN)/python -m pytest"]


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` is the README's second command, which installs from the lock (through `make test`)."""
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    command = lines[-1]
    assert shlex.split(command)[-2:] == ["make", "test"]
    assert "apt-get install -y chromium chromium-driver" in command, "the browser test's Chromium"
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert command in blocks, "the README shows exactly the command CI runs"
