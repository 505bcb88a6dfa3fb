"""`homework serve` applies the uvicorn limits it is given (app/cli.py, README "Timeouts, limits
and the reverse proxy"), seen from raw sockets on a loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.served import serving

HOST = "127.0.0.1"
KEEP_ALIVE_SECONDS = 1
MAX_HEADER_BYTES = 4096


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    cwd = tmp_path_factory.mktemp("serve-limits")
    with serving(
        cwd,
        server_http="h11",
        server_keep_alive_seconds=str(KEEP_ALIVE_SECONDS),
        server_max_header_bytes=str(MAX_HEADER_BYTES),
    ) as (served_port, _):
        yield served_port


def _get(sock: socket.socket, path: str, *extra_headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", *extra_headers, "", ""]
    sock.sendall("\r\n".join(lines).encode())
    return sock.recv(65536)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server ends the connection within `seconds` (what is left of an answer is
    read and dropped)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
    return False


def test_an_idle_keep_alive_connection_is_closed_after_the_setting(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        assert _get(sock, "/healthz").startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        # uvicorn's own default would keep it 5 s.
        assert _closed_within(sock, KEEP_ALIVE_SECONDS + 1.5)
        assert time.monotonic() - started >= KEEP_ALIVE_SECONDS * 0.9


def test_a_request_head_over_the_limit_is_refused(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        fits = _get(sock, "/healthz", "X-Padding: " + "a" * (MAX_HEADER_BYTES // 2))
        assert fits.startswith(b"HTTP/1.1 200 ")
    with socket.create_connection((HOST, port), timeout=5) as sock:
        # A head still unfinished at twice the limit (h11's default would wait for 16 KB).
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        sock.sendall(b"X-Padding: " + b"a" * (MAX_HEADER_BYTES * 2) + b"\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
        assert _closed_within(sock, 2)
