"""A body that does not arrive in time is a 408 and a closed connection (slowloris), against the
real `homework serve` on a loopback port, through raw sockets (app/core/body_timeout.py)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.served import homework, serving

TIMEOUT_SECONDS = 1.0
HOST = "127.0.0.1"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, dict[str, str]]]:
    """`homework serve` with a 1-second body deadline, on each of uvicorn's HTTP parsers;
    yields its port and a tenant's OAuth client (`client_id`, `client_secret`)."""
    cwd = tmp_path_factory.mktemp("body-timeout")
    with serving(cwd, body_timeout_seconds=str(TIMEOUT_SECONDS), server_http=request.param) as (
        port,
        env,
    ):
        issued = json.loads(homework("tenants", "create", "Slow Clinic", cwd=cwd, env=env))
        yield port, issued


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=5)
    return sock


def _head(path: str, length: int, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (within a second)."""
    sock.settimeout(1)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_body_that_stops_arriving_is_a_408_and_the_connection_is_closed(
    server: tuple[int, dict[str, str]],
) -> None:
    port, _ = server
    with _connect(port) as sock:
        sock.sendall(_head("/v1/clients", 1000) + b"{")  # 1 byte of 1,000, then silence
        started = time.monotonic()
        status, headers, body = _read_answer(sock)
        waited = time.monotonic() - started
        assert _closed(sock), "the connection is still held"
    # Was: no answer after 20 s.
    assert status == 408
    assert TIMEOUT_SECONDS * 0.9 <= waited < TIMEOUT_SECONDS + 2
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["type"] == "urn:homework:problem:request-timeout"
    assert problem["status"] == 408
    assert problem["request_id"] == headers["x-request-id"]


def test_a_trickle_cannot_stretch_the_deadline_but_a_slow_body_in_time_is_served(
    server: tuple[int, dict[str, str]],
) -> None:
    port, issued = server
    with _connect(port) as sock:
        sock.sendall(_head("/v1/clients", 1000))
        started = time.monotonic()
        sock.settimeout(0.3)
        answer = b""
        while not answer and time.monotonic() - started < 5:
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b" ")  # a byte every 0.3 s: never idle for long, never done
        # The deadline counts from the start, not from the last byte.
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < TIMEOUT_SECONDS + 0.6
        while answer:  # the rest of the answer, then the end of the connection
            answer = sock.recv(65536)

    # A slow body that is whole in time is served, and its connection kept.

    form = f"grant_type=client_credentials&client_id={issued['client_id']}"
    form += f"&client_secret={issued['client_secret']}"
    body = form.encode()
    pieces = [body[i : i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
    with _connect(port) as sock:
        sock.sendall(_head("/oauth/token", len(body), "application/x-www-form-urlencoded"))
        for piece in pieces:  # about 0.6 s in all, under the 1 s deadline
            time.sleep(0.15)
            sock.sendall(piece)
        status, headers, answer = _read_answer(sock)
        assert status == 200, answer
        assert json.loads(answer)["token_type"] == "Bearer"
        assert headers.get("connection") != "close"
        # The connection is kept for the next request.
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert _read_answer(sock)[0] == 200


def test_an_answer_before_the_body_closes_the_connection_but_not_after_an_empty_one(
    server: tuple[int, dict[str, str]],
) -> None:
    # A route that reads no body answers at once; the rest of the body is not waited for.
    port, _ = server
    with _connect(port) as sock:
        sock.sendall(_head("/healthz", 1000) + b"{")
        status, headers, _ = _read_answer(sock)
        assert status == 405
        assert headers["connection"] == "close"
        assert _closed(sock)
    # An empty body is whole: that connection is kept.
    with _connect(port) as sock:
        sock.sendall(_head("/healthz", 0))
        status, headers, _ = _read_answer(sock)
        assert status == 405
        assert "connection" not in headers
        assert not _closed(sock)
