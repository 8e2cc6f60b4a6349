"""geth v1.13.15, the last geth that seals Clique blocks, built from the Go module proxy into
the ignored tools/geth/ folder (no binary is downloaded). Building is a no-op once it is there."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GETH_VERSION = "v1.13.15"
GETH_MODULE = f"github.com/ethereum/go-ethereum/cmd/geth@{GETH_VERSION}"
GETH = ROOT / "tools" / "geth" / "bin" / "geth"


class GethBuildError(RuntimeError):
    """geth could not be built (no Go toolchain, or the build failed)."""


def ensure_geth(path: Path = GETH) -> Path:
    """The geth binary, built first if it is missing (about 3 to 5 minutes cold)."""
    if path.is_file() and os.access(path, os.X_OK):
        return path
    go = shutil.which("go")
    if go is None:
        raise GethBuildError("geth is not built and `go` is not on PATH: install Go >= 1.21 to build " + GETH_MODULE)
    path.parent.mkdir(parents=True, exist_ok=True)
    # geth 1.13 links github.com/fjl/memsize, which reaches into the runtime by linkname:
    # Go >= 1.23 refuses that at link time unless the check is switched off.
    env = dict(os.environ, GOBIN=str(path.parent), GOFLAGS="-buildvcs=false")
    result = subprocess.run([go, "install", "-ldflags=-checklinkname=0", GETH_MODULE], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0 or not path.is_file():
        raise GethBuildError(f"`go install {GETH_MODULE}` failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return path


def geth_version(path: Path = GETH) -> str:
    out = subprocess.run([str(path), "version"], capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:"))
