"""Ports for the servers the tools start, and the reason a signer gives when it cannot start."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from devnet.clique import CliqueNetwork, NetworkError, exit_reason
from devnet.ports import ephemeral_range, free_port


def test_free_ports_lie_outside_the_range_the_kernel_gives_outgoing_connections():
    lo, hi = ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(not lo <= p <= hi for p in ports), sorted(ports)
    for p in ports:  # and each can be bound now
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_held_by_a_listener_is_never_handed_out(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        held.listen()
        taken = held.getsockname()[1]
        # the picker draws the held port first, then another one
        draws = iter([taken, taken, taken + 1 if taken + 1 < 32768 else taken - 1])
        monkeypatch.setattr("devnet.ports.random.randrange", lambda *_: next(draws))
        assert free_port() != taken


def test_exit_reason_starts_at_the_fatal_line_not_in_the_goroutine_dump(tmp_path):
    log = tmp_path / "geth.log"
    log.write_text("INFO [12-02|10:00:00.000] Starting Geth\n"
                   "Fatal: Error starting protocol stack: listen tcp 127.0.0.1:20000: bind: address already in use\n"
                   + "".join(f"goroutine {i} [running]:\n" for i in range(100)))
    assert exit_reason(log).startswith("Fatal: Error starting protocol stack")
    log.write_text("".join(f"line {i}\n" for i in range(20)))
    assert exit_reason(log).splitlines() == [f"line {i}" for i in range(12, 20)]


@pytest.mark.network
def test_a_signer_whose_port_is_taken_says_so(tmp_path):
    net = CliqueNetwork.create(tmp_path / "net", 1, period=1)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", net.signers[0].http_port))
        squatter.listen()
        with pytest.raises(NetworkError, match="address already in use"):
            net.start(0)
    net.stop_all()


@pytest.mark.network
def test_start_all_starts_a_signer_that_died_while_starting_once_more(tmp_path):
    net = CliqueNetwork.create(tmp_path / "net", 1, period=1)
    log = net.log_file(net.signers[0])
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", net.signers[0].http_port))
    squatter.listen()

    def release_after_the_first_failure():  # geth needs about a second to reach its HTTP bind again
        deadline = time.time() + 60
        while time.time() < deadline and "address already in use" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.02)
        squatter.close()

    releaser = threading.Thread(target=release_after_the_first_failure)
    releaser.start()
    try:
        net.start_all(timeout=60)
        assert net.head(0) is not None
        assert log.read_text().count("address already in use") == 1
    finally:
        releaser.join()
        net.stop_all()
