"""The runnable example service of docs/runtime.md runs and says what the docs say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_example_service_runs() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "service.py")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "fraud_check replied: {'score': 0.02}" in out
    assert "delivered: billing o-2 (attempt 2)" in out
    assert "inventory.recount unrouted: True" in out
    assert "dead letter unrouted_dlq: inventory.recount" in out
