"""The lock files: every dependency of pyproject pinned, within its range, with hashes, and
installed from the lock wherever Stemcord is installed (README, CI, the image)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(text) for text in PROJECT["dependencies"]]
TEST = [Requirement(text) for text in PROJECT["optional-dependencies"]["test"]]
# The CI machine: Linux x86_64, CPython 3.11.
CI_MACHINE = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a lock, its marker and its hashes."""

    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies_on_ci(self) -> bool:
        return self.marker is None or self.marker.evaluate(CI_MACHINE)


def read_lock(name: str) -> list[Pin]:
    pins: list[Pin] = []
    lines = (ROOT / name).read_text().splitlines()
    for index, line in enumerate(lines):
        match = _PIN.match(line)
        if match is None:
            continue
        hashes = []
        for following in lines[index + 1 :]:
            found = re.match(r"^\s+--hash=(sha256:[0-9a-f]{64})", following)
            if found is None:
                break
            hashes.append(found.group(1))
        marker = match["marker"]
        pins.append(
            Pin(
                canonicalize_name(match["name"]),
                Version(match["version"]),
                Marker(marker) if marker else None,
                tuple(hashes),
            )
        )
    return pins


def by_name(pins: list[Pin]) -> dict[str, list[Pin]]:
    found: dict[str, list[Pin]] = {}
    for pin in pins:
        found.setdefault(pin.name, []).append(pin)
    return found


LOCKS = {"requirements.lock": RUNTIME, "requirements-test.lock": RUNTIME + TEST}


@pytest.mark.parametrize(("lock", "wanted"), LOCKS.items())
def test_every_dependency_of_pyproject_is_pinned_within_its_range(
    lock: str, wanted: list[Requirement]
) -> None:
    pinned = by_name(read_lock(lock))
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in {lock}"
        for pin in pinned[name]:
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{lock} pins {name}=={pin.version}, outside pyproject's {requirement}"
            )
        assert any(pin.applies_on_ci() for pin in pinned[name]), f"{name}: none for CI"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_hashes_and_each_package_has_one_version_per_machine(
    lock: str,
) -> None:
    pins = read_lock(lock)
    assert len(pins) > 20
    for pin in pins:
        assert pin.hashes, f"{pin.name} has no hash in {lock}"
    on_ci = [pin.name for pin in pins if pin.applies_on_ci()]
    assert len(on_ci) == len(set(on_ci)), "two versions of one package for the CI machine"


def test_the_runtime_lock_holds_no_test_tools_and_agrees_with_the_test_lock() -> None:
    runtime = by_name(read_lock("requirements.lock"))
    test = by_name(read_lock("requirements-test.lock"))
    for tool in ("pytest", "ruff", "mypy", "import-linter", "hypothesis"):
        assert tool not in runtime
    # The tests run the very versions production runs.
    for name, pins in runtime.items():
        assert [p.version for p in test[name]] == [p.version for p in pins], name


def test_the_lint_and_type_tools_are_held_to_one_release_line() -> None:
    for requirement in TEST:
        if canonicalize_name(requirement.name) in {"ruff", "mypy", "import-linter"}:
            uppers = [spec for spec in requirement.specifier if spec.operator == "<"]
            assert uppers, f"{requirement} has no upper bound"


def test_every_install_goes_through_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    run = "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.lock"
    test = (
        "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r "
        "requirements-test.lock && .venv/bin/pip install --no-deps -e . && "
        ".venv/bin/python -m pytest"
    )
    assert f"{run} && .venv/bin/pip install --no-deps -e . && .venv/bin/python -m bot" in readme
    assert test in readme
    assert "pip install -e" not in readme.replace("pip install --no-deps -e", "")
    assert "--require-hashes -r requirements-test.lock" in ci
    assert "pip install --quiet --no-deps -e ." in ci
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert not re.search(
        r"pip install (?!(?:--quiet )?(?:--require-hashes|--no-deps))", ci + dockerfile
    )
