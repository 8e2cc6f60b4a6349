"""A small real settlement-node stand-in: POST /v1/readings over HTTP, de-duplicating, counting
everything it got. Behaviour is switched by the test (answer 503, reject some, hold a request)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.lock = threading.Lock()
        self.posts: list[list[dict]] = []  # every body received, in order
        self.stored: dict[tuple[str, int], dict] = {}  # (meter_id, timestamp) -> reading
        self.status = 200  # 503 to simulate an overloaded node
        self.reject = lambda reading: None  # -> (RefusalCode, message) to reject it, or None
        self.answer: tuple[int, bytes] | None = None  # a fixed raw answer (not the protocol's body)
        self.hold = threading.Event()  # set: the next POST is held (stored, never answered)
        self.held = threading.Event()  # set once a POST is being held
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    readings = json.loads(body)["readings"]
                except (ValueError, KeyError):
                    return self._answer(400, {"detail": "malformed body"})
                with receiver.lock:
                    receiver.posts.append(readings)
                    if receiver.answer is not None:
                        return self._answer(*receiver.answer)
                    if receiver.status != 200:
                        return self._answer(receiver.status, {"detail": "unavailable"})
                    out = {"accepted": [], "duplicates": [], "rejected": []}
                    for i, r in enumerate(readings):
                        key = (r["meter_id"], r["timestamp"])
                        refusal = receiver.reject(r)
                        if refusal:
                            code, message = refusal
                            out["rejected"].append({"index": i, "code": code, "message": message})
                        elif key in receiver.stored:
                            out["duplicates"].append(i)
                        else:
                            receiver.stored[key] = r
                            out["accepted"].append(i)
                    holding = receiver.hold.is_set()
                if holding:  # stored, but the answer never reaches the oracle
                    receiver.held.set()
                    receiver.release.wait(30)
                    self.close_connection = True
                    return
                self._answer(422 if out["rejected"] else 200, out)

            def _answer(self, status: int, body: dict | bytes) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def sent_count(self) -> dict[tuple[str, int], int]:
        counts: dict[tuple[str, int], int] = {}
        with self.lock:
            for post in self.posts:
                for r in post:
                    key = (r["meter_id"], r["timestamp"])
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
