"""A webhook receiver for benchmarks, in a process of its own: answers at once, slowly, or hangs.

    .venv/bin/python -m bench.receiver [--delay SECONDS | --delay MIN:MAX]

A small asyncio HTTP/1.1 server on 127.0.0.1 (keep-alive, no pipelining, stdlib only so that it
starts in a fraction of a second). It prints its port on the first line of stdout, then serves
until it is terminated.

- `POST` (any path): notes the arrival (`time.time()`, the wall clock every process here shares)
  of each `webhook-id` the first time it is seen, with the event's type and `data.assignment_id`
  from the JSON body, then waits `--delay` seconds (a fixed time, or uniformly between MIN and MAX)
  and answers `200 ok`. A delay longer than the sender's timeout is a receiver that hangs.
- `GET /stats`: `{"requests", "distinct", "types": {type: distinct ids}, "first_at",
  "last_new_at"}`, cheap enough to poll while thousands of deliveries arrive.
- `GET /arrivals`: the same counts and `"first": {webhook-id: [arrived, type, assignment_id]}`.

Neither GET is delayed. Signatures are not verified here (tests/webhook_receiver.py does that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from typing import Any


class Receiver:
    def __init__(self, delay_min: float, delay_max: float) -> None:
        self.delay_min = delay_min
        self.delay_max = delay_max
        self.first: dict[str, tuple[float, str, str]] = {}
        self.types: Counter[str] = Counter()
        self.requests = 0
        self.first_at: float | None = None
        self.last_new_at: float | None = None
        self.random = random.Random(7)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "distinct": len(self.first),
            "types": dict(self.types),
            "first_at": self.first_at,
            "last_new_at": self.last_new_at,
        }

    def note(self, arrived: float, headers: dict[str, str], body: bytes) -> None:
        self.requests += 1
        webhook_id = headers.get("webhook-id", "")
        if webhook_id in self.first:
            return
        try:
            payload = json.loads(body)
            event_type = str(payload.get("type", ""))
            assignment_id = str((payload.get("data") or {}).get("assignment_id") or "")
        except (ValueError, AttributeError):
            event_type, assignment_id = "", ""
        self.first[webhook_id] = (arrived, event_type, assignment_id)
        self.types[event_type] += 1
        if self.first_at is None:
            self.first_at = arrived
        self.last_new_at = arrived

    def delay(self) -> float:
        if self.delay_max <= 0:
            return 0.0
        return self.random.uniform(self.delay_min, self.delay_max)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("GET /stats"):
                    answer = json.dumps(self.stats()).encode()
                elif lines[0].startswith("GET /arrivals"):
                    answer = json.dumps({**self.stats(), "first": self.first}).encode()
                else:
                    self.note(arrived, headers, body)
                    pause = self.delay()
                    if pause:
                        await asyncio.sleep(pause)
                    answer = b"ok"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the sender closed the connection (for a hanging receiver: it gave up)
        finally:
            writer.close()


async def serve(delay_min: float, delay_max: float) -> None:
    receiver = Receiver(delay_min, delay_max)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def parse_delay(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high or low)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", default="0", help="seconds before answering, or MIN:MAX")
    delay_min, delay_max = parse_delay(parser.parse_args().delay)
    try:
        asyncio.run(serve(delay_min, delay_max))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    run()
