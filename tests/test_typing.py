"""The types that reach a service's code: mypy --strict on a service that imports interlock,
run from outside the repository, so that it finds interlock where a service would (in the
development install `make setup` makes, or an installed wheel)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import interlock

MYPY = Path(sys.executable).parent / "mypy"

SERVICE = '''
import interlock
from interlock import Event, Router


async def main() -> None:
    router: Router = interlock.load("shop.route")

    @router.handler("billing")
    async def billing(event: Event) -> None:
        print(event.id, event.data)

    async with router:
        receipt = await router.publish("order.created", {"id": "o-1"})
        print(receipt)
        await router.drain()
'''

# A handler with a parameter of its own and a precise reply: registering it keeps both.
PRECISE = '''
import interlock
from interlock import Event

router = interlock.load("shop.route")


@router.handler("audit")
def audit(event: Event, verbose: bool = False) -> int:
    return len(event.data) if verbose else 0


def count(event: Event) -> int:
    return audit(event, verbose=True)  # (a `(Event) -> Any` would take no `verbose`, and return Any)
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(folder: Path, cache: Path, code: str) -> subprocess.CompletedProcess[str]:
    (folder / "service.py").write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.run([str(MYPY), "--strict", "--cache-dir", str(cache), "service.py"],
                          cwd=folder, capture_output=True, text=True, timeout=600)


def test_a_service_importing_interlock_type_checks(tmp_path: Path, cache: Path) -> None:
    result = _mypy(tmp_path, cache, SERVICE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_a_registered_handler_keeps_its_type(tmp_path: Path, cache: Path) -> None:
    result = _mypy(tmp_path, cache, PRECISE)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the check has teeth: a wrong call to the handler is reported
    result = _mypy(tmp_path, cache, PRECISE.replace("verbose=True", 'verbose="yes"'))
    assert result.returncode == 1
    assert 'Argument "verbose" to "audit" has incompatible type "str"' in result.stdout


def test_a_path_that_names_nothing_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(interlock.InputError, match="no such file or folder"):
        interlock.check(str(tmp_path / "nope"))
    with pytest.raises(interlock.InputError, match=r"no `\.route` files in folder"):
        interlock.compile(str(tmp_path))
    with pytest.raises(interlock.InputError, match="no such folder"):
        interlock.load(str(tmp_path), root=str(tmp_path / "nope"))
    assert "InputError" in interlock.__all__
