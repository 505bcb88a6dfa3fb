"""Headless Chromium for tests that look at a page as a person would.

The browser is Debian's `chromium` package. The session fixture finds it, or installs it with
apt-get when it can (root, apt-get present); otherwise the tests that need it are skipped with
a loud reason, except under `CI=true`, where a browser test that cannot run is a failure.

Every run is offline: the resolver maps every host name to "not found" except the ones a test
names, so that a page that reaches for a CDN, a font host or anything else outside this
machine loads without it, and a test sees what a closed clinic network would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

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
    rules = ", ".join([*host_rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"])
    command = [
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
        "--virtual-time-budget=15000",
        *flags,
        url,
    ]
    # No proxy from the environment either: the rules above must be the whole network.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr[-3000:]}"
    if console is not None:
        console.extend(line for line in result.stderr.splitlines() if ":CONSOLE" in line)
    return result.stdout
