"""A real JWKS host on loopback, standing in for a tenant's identity provider."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JwksHost:
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200  # anything else: the IdP is down, and answers no keys
        self.hits = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"


@contextmanager
def serve_jwks() -> Iterator[JwksHost]:
    host = JwksHost()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.hits += 1
            body = json.dumps({"keys": host.keys} if host.status == 200 else {}).encode()
            self.send_response(host.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
