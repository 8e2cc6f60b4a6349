"""Operators in separate Linux network namespaces, for partition tests (needs root / CAP_NET_ADMIN).

Layout for N operators (namespace names carry a per-run tag, so runs never collide):

* a hub namespace `<tag>-hub` holding a bridge: the operators' network. Operator i's namespace
  `<tag>-op<i>` has a veth into it with 10.77.0.(10+i)/24: its validator's p2p port and its
  settlement node's API listen there, and the peers reach each other only over it.
  `cut(i)` brings operator i's hub-side veth down (both sides go on running, unable to reach each
  other); `heal(i)` brings it up again.
* a control link per operator, a veth pair between the calling (root) namespace, 10.77.(100+i).1/30
  ... 10.77.(100+i).2/30 inside: how the test (standing in for the outside world: the oracles and
  the observer) reaches operator i's validator RPC and node API. It is never cut.

Only these addresses are used; `remove()` deletes the namespaces and the root-side veths (deleting
a namespace destroys the veths in it), and is safe to call more than once and after a failure.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, field

SUBNET = "10.77"
HUB_PREFIX = f"{SUBNET}.0"


class NetnsError(RuntimeError):
    """`ip netns` is not permitted here, or a command of the topology failed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def netns_permitted() -> str | None:
    """None when namespaces can be created here, else why not (to skip a test with)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    probe = f"nsprobe-{uuid.uuid4().hex[:6]}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` is not permitted: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Operators:
    """N operator namespaces on a hub bridge, each with a control link to the caller."""

    n: int
    tag: str = field(default_factory=lambda: "st" + uuid.uuid4().hex[:6])
    created: list[str] = field(default_factory=list)  # namespaces, for remove()

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    def ns(self, i: int) -> str:
        return f"{self.tag}-op{i}"

    def hub_address(self, i: int) -> str:
        """Operator i's address on the operators' network (p2p, node to node)."""
        return f"{HUB_PREFIX}.{10 + i}"

    def control_address(self, i: int) -> str:
        """Operator i's address on its control link (validator RPC and node API from outside)."""
        return f"{SUBNET}.{100 + i}.2"

    def _hub_veth(self, i: int) -> str:
        return f"{self.tag}h{i}"  # interface names: at most 15 characters

    def _ctl_veth(self, i: int) -> str:
        return f"{self.tag}c{i}"

    def create(self) -> Operators:
        try:
            _ip("netns", "add", self.hub)
            self.created.append(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            for i in range(self.n):
                ns = self.ns(i)
                _ip("netns", "add", ns)
                self.created.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
                # operator i <-> hub bridge
                _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", self._hub_veth(i),
                    "netns", self.hub)
                _ip("-n", ns, "addr", "add", f"{self.hub_address(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", self.hub, "link", "set", self._hub_veth(i), "master", "br0")
                _ip("-n", self.hub, "link", "set", self._hub_veth(i), "up")
                # caller <-> operator i (control)
                _ip("link", "add", self._ctl_veth(i), "type", "veth", "peer", "name", "ctl0", "netns", ns)
                _ip("addr", "add", f"{SUBNET}.{100 + i}.1/30", "dev", self._ctl_veth(i))
                _ip("link", "set", self._ctl_veth(i), "up")
                _ip("-n", ns, "addr", "add", f"{self.control_address(i)}/30", "dev", "ctl0")
                _ip("-n", ns, "link", "set", "ctl0", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def exec_prefix(self, i: int) -> list[str]:
        """argv prefix that runs a command inside operator i's namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    def cut(self, i: int) -> None:
        """Operator i loses the operators' network (its validator and node keep running)."""
        _ip("-n", self.hub, "link", "set", self._hub_veth(i), "down")

    def heal(self, i: int) -> None:
        _ip("-n", self.hub, "link", "set", self._hub_veth(i), "up")

    def is_cut(self, i: int) -> bool:
        out = _ip("-n", self.hub, "-br", "link", "show", self._hub_veth(i)).stdout
        return " DOWN " in f" {out} " or "state DOWN" in out

    def remove(self) -> None:
        for i in range(self.n):
            _ip("link", "del", self._ctl_veth(i), check=False)  # its peer in the namespace goes with it
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        self.created.clear()

    def __enter__(self) -> Operators:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.remove()
