"""A header rejected against its context is not banned (FraudProofs), so a colluding quorum may
submit the same false header again: the honest node, which proved it once, proves it again.
Node process on anvil; the colluders (2 of 3) serve their batch's leaves from a plain HTTP
server, as a peer would."""
from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eth_account import Account
from node_harness import NodeProcess, deploy_settlement
from test_node_availability import PERIOD, STATUS_REJECTED, WINDOW
from test_node_fraud_proofs import leaf

import rust_core
from devnet.ports import free_port
from node.chain import STATUS_PENDING, Chain
from node.fraud import sum_tree
from rust_core.wire import BatchHeader, LeafModel, LeavesAnswer

pytestmark = pytest.mark.chain
UNKNOWN_METER = 2


def serve_leaves(root: bytes, leaves: list[tuple]) -> ThreadingHTTPServer:
    """A colluding peer: it serves the leaves of its own batch and nothing else."""
    body = LeavesAnswer(root=root, final=False, leaves=[LeafModel.of(lf) for lf in leaves]).model_dump_json().encode()

    class Peer(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            ok = self.path.split("?")[0].endswith("/leaves") and root.hex() in self.path
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if ok else b'{"detail": "not here"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Peer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_rejections(ledger, n: int, timeout: float) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rejected = ledger.events.BatchRejected().get_logs(from_block=0)
        if len(rejected) >= n:
            return rejected
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} rejections within {timeout} s")


def test_the_same_false_header_submitted_again_is_proven_again(anvil, tmp_path):
    now_p = int(time.time()) // PERIOD
    dep = deploy_settlement(anvil, period_seconds=PERIOD, window=WINDOW * 3, n_operators=3, quorum=2, n_meters=2,
                            active_from=now_p - 4)
    period, group = now_p - 2, dep.meters[0].group_id
    # the two registered meters, honestly, and a meter nobody registered
    leaves = [leaf(dep, i, period, 3_000_000, (dep.meters[i].active_from - 1, *dep.meters[i].baseline))
              for i in range(2)]
    ghost = (rust_core.keccak256(secrets.token_bytes(8)), period, period * PERIOD + 3, 5_000_000, 0)
    leaves.append((*ghost, 0, 0, 0, rust_core.sign_readings(dep.domain, [ghost], [secrets.token_bytes(32)])[0]))
    leaves.sort(key=lambda lf: lf[0])
    root = sum_tree(leaves).root
    peer = serve_leaves(root[0], leaves)
    honest = NodeProcess(tmp_path, "honest", dep, dep.operator_keys[2], free_port(),
                         [f"http://127.0.0.1:{peer.server_port}", f"http://127.0.0.1:{free_port()}"],
                         grace=1.0, takeover=1.5)
    colluders = sorted(dep.operator_keys[:2], key=lambda k: Account.from_key(k).address.lower())
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, colluders[0])
    ledger = dep.ledger_contract()

    def submit_false() -> None:
        header = (period, group, root[0], root[1], root[2], len(leaves), chain.operator_set().epoch)
        digest = rust_core.batch_digest(dep.domain, header)
        chain.submit_batch(header, [Chain(dep.rpc_url, dep.registry, dep.ledger, k).signer.sign_digest(digest)
                                    for k in colluders])
        assert chain.get_batch(period, group).status == STATUS_PENDING

    honest.start()
    try:
        submit_false()
        first = wait_rejections(ledger, 1, timeout=30)
        content = BatchHeader.of_root(period, group, root, len(leaves), 0).content_hash()
        assert not ledger.functions.headerRejected(content).call()  # judged against the registry: no ban
        submit_false()  # the same header again
        second = wait_rejections(ledger, 2, timeout=30)
        assert [(e.args.reason, bytes.fromhex(e.args.prover[2:])) for e in second] == [
            (UNKNOWN_METER, honest.address)] * 2
        assert first[0].args.root == second[1].args.root == root[0]
        assert dep.batch(period, group)[5] == STATUS_REJECTED
        assert ledger.functions.submissionNumber(period, group).call() == 1
    finally:
        honest.stop()
        peer.shutdown()
