"""Headless Chromium for tests that look at a page as a person would.

The browser is Debian's `chromium` package. The session fixture finds it, or installs it with
apt-get when it can (root, apt-get present); otherwise the tests that need it are skipped with
a loud reason, except under `CI=true`, where a browser test that cannot run is a failure.

Every run is offline: the resolver maps every host name to "not found" except the ones a test
names, so that a page that reaches for a CDN, a font host or anything else outside this
machine loads without it, and a test sees what a closed clinic network would.

`run_headless` renders a page once (`--dump-dom`, `--screenshot`); `devtools` keeps a page open
under the DevTools protocol (a `websockets` client) for a test that clicks and types in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.request import urlopen

import pytest

from tests.served import stop

CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT_SECONDS = 600
RUN_TIMEOUT_SECONDS = 60


def _find() -> Path | None:
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def _unavailable(reason: str) -> NoReturn:
    message = f"HEADLESS CHROMIUM UNAVAILABLE: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: browser tests may not be skipped)", pytrace=False)
    sys.stderr.write(f"\n{'!' * 30} {message}\n")
    pytest.skip(message)


def _apt_get(*args: str) -> None:
    command = ["apt-get", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=APT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"`{' '.join(command)}` took over {APT_TIMEOUT_SECONDS} s")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        _unavailable(f"`{' '.join(command)}` exited {result.returncode}:\n" + "\n".join(tail))


def _install() -> None:
    if shutil.which("apt-get") is None:
        _unavailable(f"{CHROMIUM} is missing and there is no apt-get to install it")
    if os.geteuid() != 0:
        _unavailable(f"{CHROMIUM} is missing; run `apt-get install chromium` as root")
    started = time.monotonic()
    _apt_get("update")
    _apt_get("install", "-y", "--no-install-recommends", "chromium")
    sys.stderr.write(f"\ninstalled Debian chromium in {time.monotonic() - started:.0f} s\n")


@pytest.fixture(scope="session", name="chromium")
def chromium_fixture() -> Path:
    """The Chromium binary, installed on first use if this machine can."""
    binary = _find()
    if binary is None:
        _install()
        binary = _find()
    if binary is None:
        _unavailable(f"apt-get ran but {CHROMIUM} is still missing")
    return binary


def _command(
    chromium: Path, url: str, *flags: str, profile: Path, host_rules: Sequence[str]
) -> list[str]:
    """Headless Chromium on `url` whose resolver knows only `host_rules` and loopback."""
    rules = ", ".join([*host_rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"])
    return [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--host-resolver-rules={rules}",
        *flags,
        url,
    ]


def _offline_env() -> dict[str, str]:
    """No proxy from the environment either: the resolver rules must be the whole network."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def run_headless(
    chromium: Path,
    url: str,
    *flags: str,
    profile: Path,
    host_rules: Sequence[str] = (),
    console: list[str] | None = None,
) -> str:
    """Runs Chromium once on `url` with `flags` (`--dump-dom`, `--screenshot=...`) and returns
    what it printed. Only the `host_rules` ("MAP name 127.0.0.1") resolve; every other name
    fails, so nothing leaves the machine. With `console`, the page's console messages (CSP
    violations among them) are appended to it."""
    if console is not None:
        flags = (*flags, "--enable-logging=stderr", "--v=0")
    result = subprocess.run(
        _command(
            chromium,
            url,
            "--virtual-time-budget=15000",
            *flags,
            profile=profile,
            host_rules=host_rules,
        ),
        capture_output=True,
        text=True,
        env=_offline_env(),
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr[-3000:]}"
    if console is not None:
        console.extend(line for line in result.stderr.splitlines() if ":CONSOLE" in line)
    return result.stdout


class DevTools:
    """One page of a headless Chromium driven over the DevTools protocol, for tests that act
    on a page (click, type) rather than only render it. The same offline resolver and flags
    as `run_headless`; the protocol's port is chosen by Chromium and read from its profile."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._next_id = 0
        self.console: list[str] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=RUN_TIMEOUT_SECONDS))
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", "")) for a in args))
            if message.get("method") == "Log.entryAdded":
                self.console.append(message["params"]["entry"].get("text", ""))
            if message.get("id") == self._next_id:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Polls a JavaScript expression until it is truthy; returns its value (`True` for an
        element, which cannot be returned by value)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(f"(value => value instanceof Node || value)({expression})")
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
            time.sleep(0.2)

    def click(self, selector: str) -> None:
        self.wait_for(f"document.querySelector({json.dumps(selector)})")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def type_into(self, selector: str, text: str) -> None:
        """Focuses an input and types into it as a keyboard would (React sees the input)."""
        self.wait_for(f"document.querySelector({json.dumps(selector)})")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)


@contextmanager
def devtools(
    chromium: Path, url: str, *, profile: Path, host_rules: Sequence[str] = ()
) -> Iterator[DevTools]:
    """Chromium on `url`, with its page under `DevTools` control until the block ends."""
    from websockets.sync.client import connect

    command = _command(
        chromium,
        url,
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--window-size=1280,2000",
        profile=profile,
        host_rules=host_rules,
    )
    log = profile.with_name(profile.name + ".log").open("w")
    browser = subprocess.Popen(command, env=_offline_env(), stdout=log, stderr=log)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while not (port_file.exists() and port_file.read_text().strip()):
            assert browser.poll() is None, f"chromium exited {browser.returncode}"
            assert time.monotonic() < deadline, "chromium opened no DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages: list[dict[str, Any]] = []
        while not pages:
            with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                pages = [t for t in json.load(answer) if t.get("type") == "page"]
            assert time.monotonic() < deadline, "chromium opened no page"
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
            tools = DevTools(socket)
            tools.send("Runtime.enable")
            tools.send("Log.enable")
            yield tools
    finally:
        stop(browser)
        log.close()
