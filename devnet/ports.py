"""Loopback ports for the servers the tools start (anvil, geth, settlement nodes, oracles).

A port the kernel hands out for `bind(0)` lies in its ephemeral range, which is also where it
picks the local end of every outgoing connection. Between choosing a port and the server binding
it, any dial (geth signers dialling their static peers, a client polling an RPC endpoint) can take
it, and the server then dies with "address already in use". So ports are drawn at random from
below that range, where the kernel never places a connection of its own.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: well-known services a developer machine may run (5432, 8545, 1883, ...)


def ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in _RANGE_FILE.read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1", attempts: int = 500) -> int:
    """A TCP port on `host` that no socket holds right now and that the kernel does not hand out
    to outgoing connections."""
    lo, hi = ephemeral_range()
    # the widest port span outside the ephemeral range
    below, above = (_LOWEST, lo), (hi + 1, 65536)
    span = max(below, above, key=lambda r: r[1] - r[0])
    if span[1] - span[0] < 1000:  # an unusual kernel setting: fall back to the kernel's choice
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    for _ in range(attempts):
        port = random.randrange(*span)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free TCP port on {host} in {span[0]}..{span[1] - 1} after {attempts} tries")
