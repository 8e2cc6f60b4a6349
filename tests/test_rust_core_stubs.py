"""The hand-written stubs (rust_core/_native.pyi) match the compiled module (mypy.stubtest)."""
from __future__ import annotations

import subprocess
import sys


def test_stubs_match_the_native_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "rust_core._native"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
