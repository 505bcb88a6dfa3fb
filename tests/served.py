"""The real service on a loopback port, in a process of its own, for tests that need a real
HTTP server in front of the app (a browser, raw sockets)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(**homework: str) -> dict[str, str]:
    """This process's environment without its HOMEWORK_* variables, plus `homework`
    (`database_url="..."` becomes HOMEWORK_DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEWORK_")}
    return env | {f"HOMEWORK_{name.upper()}": value for name, value in homework.items()}


def homework(*args: str, cwd: Path, env: dict[str, str]) -> str:
    """Runs the `homework` command to completion and returns what it printed."""
    done = subprocess.run(
        [str(BIN / "homework"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def running(command: Sequence[str], *, port: int, cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """Runs `command` (a server on 127.0.0.1:`port`) until /healthz answers, and stops it after.
    The working directory is a temporary one, so that a developer's .env is not read."""
    log_path = cwd / f"server-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]], cwd=cwd, env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield
        finally:
            stop(server)


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Asks a process of ours to end, then makes it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def uvicorn_command(port: int) -> list[str]:
    """The factory under plain uvicorn, as the docs test has always served it."""
    return [
        *("uvicorn", "app.main:create_app", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
    ]


@contextmanager
def serving(cwd: Path, **settings: str) -> Iterator[tuple[int, dict[str, str]]]:
    """`homework serve` (migrations, then uvicorn with our limits) on a free port over a SQLite
    file in `cwd`, with `settings` (`body_timeout_seconds="1"`); yields the port and the
    environment it runs with (for `homework(...)` commands on the same database)."""
    port = free_port()
    env = service_env(env="test", database_url=f"sqlite+aiosqlite:///{cwd}/homework.db", **settings)
    with running(("homework", "serve", "--port", str(port)), port=port, cwd=cwd, env=env):
        yield port, env
