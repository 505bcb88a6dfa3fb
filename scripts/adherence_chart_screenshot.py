"""Draws docs/adherence-chart.png: the adherence picture of a client with four weeks of homework,
as headless Chromium renders it.

    .venv/bin/python scripts/adherence_chart_screenshot.py [--out docs/adherence-chart.png]

Everything goes through the API, in process, on a temporary SQLite database: a tenant, a
clinician and a client on their care team; four weeks of a daily mood log (done more often as
the weeks go by, with barriers on the evenings it was not), two exposure practices a week up a
bus-riding ladder with SUDS falling, a weekly thought record, PHQ-9 and GAD-7 at intake, week 2
and week 4. A fixed seed makes the same history every run. It then fetches
`GET /v1/clients/{id}/adherence.svg`, times it against the JSON read, and screenshots the SVG
with Debian's chromium (offline: every host name fails to resolve).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.core import migrations
from app.core.clock import FixedClock
from app.core.config import Environment, Settings
from app.core.db import Database
from app.core.scopes import ROLE_SCOPES, Context
from app.main import create_app
from app.services import tenants

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
INTAKE = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday
WINDOW = {"from": "2026-11-02T00:00:00Z", "to": "2026-11-30T00:00:00Z"}
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
DONE_PER_WEEK = (4, 5, 6, 6)  # mood logs done of seven, week by week
LADDER = [
    # (before, peak, after): distress falling as the client climbs and repeats.
    (65, 85, 45),
    (60, 80, 35),
    (60, 75, 30),
    (55, 70, None),  # partly done: left before the end, no rating after
    (50, 65, 25),
    (45, 60, 20),
    (40, 55, 15),
    (35, 50, 15),
]
PHQ9 = {0: 16, 14: 12, 27: 8}  # day of the window: total
GAD7 = {0: 13, 14: 10, 27: 7}


def answers_totalling(total: int, items: int) -> dict[str, int]:
    answers = {}
    for n in range(1, items + 1):
        answers[f"item_{n}"] = min(3, total) if n != 9 else 0  # PHQ-9 item 9 stays 0
        total -= answers[f"item_{n}"]
    assert total == 0
    return answers


class Seeder:
    """Assigns as of the intake (a series wholly past is refused) and records as of the end of
    week 4 (a completion may not be in the future)."""

    def __init__(
        self, http: httpx.AsyncClient, clock: FixedClock, headers: dict[str, dict[str, str]]
    ) -> None:
        self.http = http
        self.clock = clock
        self.headers = headers
        self.rng = random.Random(18)  # noqa: S311 (a demo history, not a secret)

    async def call(self, method: str, url: str, role: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.http.request(method, url, headers=self.headers[role], **kwargs)
        assert response.status_code < 300, (url, response.status_code, response.text)
        body: dict[str, Any] = response.json()
        return body

    async def assign(
        self, client_id: str, template: str, schedule: dict[str, Any]
    ) -> list[tuple[str, datetime]]:
        """The occurrences made, with their due times."""
        self.clock.at = INTAKE - timedelta(hours=1)
        body = {"client_id": client_id, "template_id": f"tpl_builtin_{template}"}
        created = await self.call(
            "POST", "/v1/assignments", "clinician", json={**body, "schedule": schedule}
        )
        return [
            (o["id"], datetime.fromisoformat(o["due_at"].replace("Z", "+00:00")))
            for o in created["occurrences"]
        ]

    async def complete(self, occurrence_id: str, at: datetime, **body: Any) -> None:
        self.clock.at = NOW
        await self.call(
            "POST",
            "/v1/completions",
            "client",
            json={"occurrence_id": occurrence_id, "completed_at": at.isoformat(), **body},
        )

    async def mood_logs(self, client_id: str) -> None:
        rrule = "FREQ=DAILY;COUNT=28;BYHOUR=20;BYMINUTE=0"
        days = await self.assign(
            client_id,
            "mood_log",
            {"type": "recurring", "rrule": rrule, "start": "2026-11-02T20:00"},
        )
        for week, done in enumerate(DONE_PER_WEEK):
            week_days = list(range(7 * week, 7 * week + 7))
            done_days = set(self.rng.sample(week_days, done))
            for day in week_days:
                occurrence, due = days[day]
                at = due + timedelta(minutes=self.rng.randint(5, 50))
                if day in done_days:
                    mood = min(10, 3 + week + self.rng.randint(0, 3))
                    await self.complete(
                        occurrence,
                        at,
                        status="done",
                        answers={"mood": mood},
                        helpfulness=self.rng.randint(4 + week // 2, 8),
                    )
                elif day % 2:
                    barriers = self.rng.choice([["no_time"], ["forgot"], ["too_hard", "no_time"]])
                    await self.complete(occurrence, at, status="not_done", barriers=barriers)
                # else: nothing recorded; its window closed, so it counts as missed

    async def exposures(self, client_id: str) -> None:
        rrule = "FREQ=WEEKLY;COUNT=8;BYDAY=TU,SA;BYHOUR=18;BYMINUTE=0"
        practices = await self.assign(
            client_id,
            "exposure",
            {"type": "recurring", "rrule": rrule, "start": "2026-11-03T18:00"},
        )
        for n, ((occurrence, due), (before, peak, after)) in enumerate(
            zip(practices, LADDER, strict=True)
        ):
            at = due + timedelta(minutes=40)
            answers: dict[str, Any] = {
                "step": f"Ride the bus for {n // 2 + 1} stops",
                "suds_before": before,
                "suds_peak": peak,
                "duration_minutes": 20 + 5 * n,
            }
            if after is None:
                await self.complete(
                    occurrence,
                    at,
                    status="partial",
                    answers=answers,
                    helpfulness=6,
                    barriers=["too_hard"],
                )
            else:
                await self.complete(
                    occurrence,
                    at,
                    status="done",
                    helpfulness=7 + n // 3,
                    answers={**answers, "suds_after": after},
                )

    async def thought_records(self, client_id: str) -> None:
        rrule = "FREQ=WEEKLY;COUNT=4;BYDAY=TH;BYHOUR=19;BYMINUTE=0"
        records = await self.assign(
            client_id,
            "thought_record",
            {"type": "recurring", "rrule": rrule, "start": "2026-11-05T19:00"},
        )
        answers = {
            "situation": "On the bus home",
            "automatic_thought": "Everyone can tell I am panicking",
            "emotion": "anxious",
            "emotion_intensity": 70,
        }
        for n, (occurrence, due) in enumerate(records[:3]):  # the fourth was missed
            at = due + timedelta(minutes=30)
            await self.complete(occurrence, at, status="done", answers=answers, helpfulness=5 + n)

    async def measures(self, client_id: str) -> None:
        for template, scores, items in (("phq9", PHQ9, 9), ("gad7", GAD7, 7)):
            for day, total in scores.items():
                due = (INTAKE + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M")
                ((occurrence, due_at),) = await self.assign(
                    client_id, template, {"type": "once", "due_at": due}
                )
                at = due_at + timedelta(minutes=20)
                await self.complete(
                    occurrence, at, status="done", answers=answers_totalling(total, items)
                )


async def seed_and_fetch(database_url: str) -> tuple[str, str, dict[str, float]]:
    settings = Settings(_env_file=None, env=Environment.test, database_url=database_url)  # type: ignore[call-arg]
    await migrations.upgrade(settings)
    database = Database(settings)
    async with database.sessionmaker() as session, session.begin():
        issued = await tenants.create_tenant(session, "Chart demo clinic")
    await database.dispose()

    app = create_app(settings)
    clock = FixedClock(INTAKE - timedelta(hours=1))
    app.state.clock = clock
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://chart.test") as http:
            token = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(issued.client_id, issued.client_secret),
            )
            assert token.status_code == 200, token.text
            system = {"Authorization": f"Bearer {token.json()['access_token']}"}
            seeder = Seeder(http, clock, {"system": system})
            clinician = await seeder.call(
                "POST",
                "/v1/clinicians",
                "system",
                json={"external_id": "cln-demo", "display_name": "Dr Demo"},
            )
            client = await seeder.call(
                "POST",
                "/v1/clients",
                "system",
                json={
                    "external_id": "clt-demo",
                    "display_name": "Demo Client",
                    "time_zone": "Europe/London",
                },
            )
            await seeder.call(
                "POST",
                f"/v1/clients/{client['id']}/care-team",
                "system",
                json={"clinician_id": clinician["id"]},
            )
            for role, kind, subject in (
                ("clinician", Context.clinician, clinician["id"]),
                ("client", Context.client, client["id"]),
            ):
                issued_token, _ = app.state.tokens.issue(
                    tenant_id=issued.tenant_id,
                    kind=kind,
                    subject=subject,
                    client_id=issued.client_id,
                    scopes=ROLE_SCOPES[kind],
                    ttl_seconds=3600,
                )
                seeder.headers[role] = {"Authorization": f"Bearer {issued_token}"}

            await seeder.mood_logs(client["id"])
            await seeder.exposures(client["id"])
            await seeder.thought_records(client["id"])
            await seeder.measures(client["id"])

            url = f"/v1/clients/{client['id']}/adherence"
            timings: dict[str, list[float]] = {"json": [], "svg": []}
            svg = ""
            for _ in range(10):
                for name, path in (("json", url), ("svg", f"{url}.svg")):
                    started = time.perf_counter()
                    response = await http.get(
                        path, params=WINDOW, headers=seeder.headers["clinician"]
                    )
                    timings[name].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    if name == "svg":
                        svg = response.text
    finally:
        await app.state.database.dispose()
    return client["id"], svg, {k: statistics.median(v) for k, v in timings.items()}


def screenshot(svg_path: Path, png_path: Path, profile: Path) -> None:
    root = ET.fromstring(svg_path.read_bytes())  # noqa: S314 (our own answer)
    width, height = root.get("width"), root.get("height")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--window-size={width},{height}",
        f"--screenshot={png_path}",
        svg_path.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "adherence-chart.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        client_id, svg, timings = asyncio.run(
            seed_and_fetch(f"sqlite+aiosqlite:///{folder}/chart.db")
        )
        svg_path = folder / "adherence.svg"
        svg_path.write_text(svg)
        screenshot(svg_path, args.out, folder / "profile")
    print(f"client {client_id}: {len(svg):,} bytes of SVG -> {args.out}")
    print(
        f"median of 10 in-process requests: JSON {timings['json'] * 1000:.0f} ms, "
        f"SVG {timings['svg'] * 1000:.0f} ms (drawing about "
        f"{(timings['svg'] - timings['json']) * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
