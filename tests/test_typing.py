"""The types that reach a service's code: mypy --strict on a service that imports interlock,
run from outside the repository, so that it finds interlock where a service would (in the
development install `make setup` makes, or an installed wheel)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
