"""The adherence picture, `GET /v1/clients/{client_id}/adherence.svg`: the JSON route's figures
drawn as one SVG, with its guarantees (no script, nothing loaded, no name or free text), the
same callers, audit and queries as the JSON read, and the screenshot in docs/.

The history is tests/test_adherence.py's, with a display name, a note, a barrier note and
exposure steps that carry markers the picture must not show.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from app.routers.adherence import CHART_CSP, CHART_HEADERS, SVG_MEDIA_TYPE
from app.services import adherence_chart
from app.services.adherence import Adherence, Figures, MeasurePoint, SudsPoint, weeks
from tests.chromium import chromium_fixture, run_headless  # noqa: F401 (a fixture)
from tests.homework_helpers import count_queries, freeze
from tests.test_adherence import done, once, seed_history
from tests.world import World

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "adherence-chart.png"
SVG = "{http://www.w3.org/2000/svg}"
NAME_MARKER = "Zebulon-Name-Marker"
NOTE_MARKER = "note-marker-4471"
BARRIER_MARKER = "barrier-marker-9021"
PANELS = {
    "completion": "Completion by week",
    "helpfulness": "Helpfulness by kind (mean, 0-10)",
    "suds": "SUDS per exposure practice (0-100)",
    "phq9": "PHQ-9 over time",
    "gad7": "GAD-7 over time",
}


def local(element: ET.Element) -> str:
    return element.tag.removeprefix(SVG)


def parse(svg: bytes) -> ET.Element:
    root = ET.fromstring(svg)
    assert local(root) == "svg"
    assert root.get("viewBox", "").startswith("0 0 ")
    assert int(root.get("width", "0")) > 0 and int(root.get("height", "0")) > 0
    return root


def panels(root: ET.Element) -> dict[str, ET.Element]:
    found = {p.get("data-panel", ""): p for p in root if local(p) == "svg"}
    assert sorted(found) == sorted(PANELS)
    for name, panel in found.items():
        titles = [t.text for t in panel.iter(f"{SVG}text") if "title" in t.get("class", "")]
        assert titles == [PANELS[name]], (name, titles)
    return found


def values(panel: ET.Element, serie: int = 0) -> list[str]:
    """The printed values of one series of a pygal panel, in order."""
    wanted = f"serie-{serie}"
    return [
        desc.text or ""
        for group in panel.iter(f"{SVG}g")
        if wanted in group.get("class", "").split()
        for desc in group.iter(f"{SVG}desc")
        if desc.get("class") == "value"
    ]


def assert_self_contained(svg: str) -> None:
    root = ET.fromstring(svg)
    assert [e for e in root.iter() if local(e) in ("script", "foreignObject")] == []
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.endswith("href"):
                assert value.startswith("#"), (name, value)
            assert not name.startswith("on"), name
    for marker in ("<script", "@import", "url(", "javascript:", 'href="http', "xml-stylesheet"):
        assert marker not in svg.lower(), marker


async def _history_with_markers(http: httpx.AsyncClient, world: World) -> str:
    await seed_history(http, world)  # the clock is now 12 November, noon
    client_a1 = world.a.clients["A1"]
    renamed = await http.patch(
        f"/v1/clients/{client_a1}",
        json={"display_name": NAME_MARKER},
        headers=world.headers("system_a"),
    )
    assert renamed.status_code == 200, renamed.text
    noted = await once(http, world, client_a1, "2026-11-11T09:00", "mood_log")
    await done(
        http,
        world,
        noted["occurrences"][0]["id"],
        status="done",
        helpfulness=6,
        answers={"mood": 5, "note": NOTE_MARKER},
    )
    refused = await once(http, world, client_a1, "2026-11-11T10:00", "mood_log")
    await done(
        http,
        world,
        refused["occurrences"][0]["id"],
        status="not_done",
        barriers=["other"],
        barrier_note=BARRIER_MARKER,
    )
    return client_a1


async def test_the_picture_draws_the_json_figures(client: httpx.AsyncClient, world: World) -> None:
    client_a1 = await _history_with_markers(client, world)
    headers = world.headers("clinician_a1")
    figures = (await client.get(f"/v1/clients/{client_a1}/adherence", headers=headers)).json()
    response = await client.get(f"/v1/clients/{client_a1}/adherence.svg", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers.get_list("cache-control") == ["private, no-store"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )

    svg = response.text
    root = parse(response.content)
    drawn = panels(root)
    title = root.find(f"{SVG}title")
    assert title is not None and client_a1 in (title.text or "")

    # Completion by week: a label per week with its counts, a bar per week that counted some.
    weeks_json = figures["by_week"]
    assert len(weeks_json) == 4
    rates = [w["completion_rate"] for w in weeks_json if w["completion_rate"] is not None]
    assert values(drawn["completion"]) == [f"{rate * 100:.0f}%" for rate in rates]
    assert len([*drawn["completion"].iter(f"{SVG}rect")]) >= len(rates)
    labels = [
        d.text or "" for d in drawn["completion"].iter(f"{SVG}desc") if d.get("class") == "x_label"
    ]
    counted = [w for w in weeks_json if w["counted"]]
    assert [label.split(" · ")[1] for label in labels] == [
        f"{w['completed']}/{w['counted']}" for w in counted
    ]
    # Helpfulness by kind: the kinds that were rated, in the JSON's order.
    rated = [f["mean_helpfulness"] for f in figures["by_kind"].values() if f["rated"]]
    assert values(drawn["helpfulness"]) == [f"{mean:.1f}" for mean in rated]
    # SUDS: before, peak, after; a partial practice's missing rating draws no bar.
    for serie, key in enumerate(("suds_before", "suds_peak", "suds_after")):
        expected = [str(p[key]) for p in figures["exposure"] if p[key] is not None]
        assert values(drawn["suds"], serie) == expected, key
    # The scores, on their bands.
    scores = [str(p["score"]) for p in figures["measures"]["phq9"]]
    assert scores == ["15", "10", "6"]
    assert values(drawn["phq9"]) == scores
    bands = [
        r.get("class") for r in drawn["phq9"].iter(f"{SVG}rect") if "band" in r.get("class", "")
    ]
    assert bands == [
        f"band band-{b}" for b in ("minimal", "mild", "moderate", "moderately_severe", "severe")
    ]
    assert "no data yet" in "".join(drawn["gad7"].itertext())

    assert_self_contained(svg)
    for secret in (NAME_MARKER, NOTE_MARKER, BARRIER_MARKER, "Busy week", "Ride the bus"):
        assert secret not in svg, secret
    # Though the JSON has the steps, as the client wrote them.
    assert figures["exposure"][0]["step"] == "Ride the bus two stops"


async def test_the_window_is_the_json_routes(client: httpx.AsyncClient, world: World) -> None:
    await seed_history(client, world)
    url = f"/v1/clients/{world.a.clients['A1']}/adherence"
    params = {"from": "2026-11-03T00:00:00Z", "to": "2026-11-08T00:00:00Z"}
    headers = world.headers("clinician_a1")
    figures = (await client.get(url, params=params, headers=headers)).json()
    picture = await client.get(f"{url}.svg", params=params, headers=headers)
    assert picture.status_code == 200
    drawn = panels(parse(picture.content))
    assert len(figures["by_week"]) == 1  # five days: one short week
    assert values(drawn["completion"]) == [f"{figures['by_week'][0]['completion_rate'] * 100:.0f}%"]
    assert values(drawn["phq9"]) == ["10"]
    bad = await client.get(f"{url}.svg", params={"from": "2026-11-13T00:00:00Z"}, headers=headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert "/from" in {e["pointer"] for e in bad.json()["errors"]}


async def test_a_client_with_nothing_yet_gets_no_data_yet(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    response = await client.get(
        f"/v1/clients/{world.a.clients['A1']}/adherence.svg", headers=world.headers("client_a1")
    )
    assert response.status_code == 200, response.text
    drawn = panels(parse(response.content))
    for name, panel in drawn.items():
        assert "no data yet" in "".join(panel.itertext()), name
    assert_self_contained(response.text)


async def test_who_may_see_the_picture(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    client_a1 = world.a.clients["A1"]
    roles = [
        "system_a",
        "clinician_a1",
        "client_a1",
        "clinician_a2",
        "client_a2",
        "system_b",
        "no_scope",
        "expired",
        "none",
    ]
    for url in (f"/v1/clients/{client_a1}/adherence", "/v1/clients/clt_nobody/adherence"):
        for role in roles:
            figures = await client.get(url, headers=world.headers(role))
            picture = await client.get(f"{url}.svg", headers=world.headers(role))
            assert picture.status_code == figures.status_code, (url, role, picture.text)
            if picture.status_code >= 400:
                assert picture.headers["content-type"] == "application/problem+json"
                assert picture.json()["status"] == figures.json()["status"]
    # Another tenant's backend, another client: not found, as for the figures.
    assert (
        await client.get(
            f"/v1/clients/{client_a1}/adherence.svg", headers=world.headers("system_b")
        )
    ).status_code == 404
    assert (
        await client.get(
            f"/v1/clients/{client_a1}/adherence.svg", headers=world.headers("client_a2")
        )
    ).status_code == 404


async def test_the_picture_is_audited_as_the_json_read(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    client_a1 = world.a.clients["A1"]
    for path in ("adherence", "adherence.svg"):
        got = await client.get(
            f"/v1/clients/{client_a1}/{path}", headers=world.headers("clinician_a1")
        )
        assert got.status_code == 200
    # A refusal is audited alike: clinician A2 is in the tenant but not on the care team.
    for path in ("adherence", "adherence.svg"):
        refused = await client.get(
            f"/v1/clients/{client_a1}/{path}", headers=world.headers("clinician_a2")
        )
        assert refused.status_code == 404
    trail = (
        await client.get(
            "/v1/audit-events", params={"client_id": client_a1}, headers=world.headers("system_a")
        )
    ).json()["data"]
    events = [(e["action"], e["resource_type"], e["actor_id"], e["outcome"]) for e in trail]
    read = ("read", "adherence", world.a.clinicians["A1"], "allowed")
    denied = ("read", "adherence", world.a.clinicians["A2"], "denied")
    assert sorted(events) == sorted([read, read, denied, denied])


async def test_the_picture_takes_the_json_reads_queries(
    client: httpx.AsyncClient, world: World
) -> None:
    await seed_history(client, world)
    url = f"/v1/clients/{world.a.clients['A1']}/adherence"
    with count_queries(world) as figures:
        assert (await client.get(url, headers=world.headers("clinician_a1"))).status_code == 200
    with count_queries(world) as picture:
        assert (
            await client.get(f"{url}.svg", headers=world.headers("clinician_a1"))
        ).status_code == 200
    assert len(picture) == len(figures), picture


# Without a database: the drawing itself.


def _month() -> Adherence:
    start = datetime(2026, 10, 27, 16, tzinfo=UTC)
    end = start + timedelta(days=28)
    due = [(start + timedelta(days=day, hours=4), day % 4 != 0) for day in range(28)]
    practices = [
        SudsPoint(
            f"cmp_{n}",
            start + timedelta(days=3 + 4 * n),
            "done",
            "a step",
            70 - 5 * n,
            85 - 5 * n,
            40 - 6 * n,
        )
        for n in range(5)
    ]
    scores = [
        MeasurePoint("cmp_p1", "phq9", start + timedelta(days=1), 16, "moderately_severe"),
        MeasurePoint("cmp_p2", "phq9", start + timedelta(days=27), 8, "mild"),
        MeasurePoint("cmp_g1", "gad7", start + timedelta(days=1), 12, "moderate"),
    ]
    overall = Figures(counted=28, completed=21, on_time=20, helpfulness_total=130, rated=21)
    by_kind = {
        "mood_log": Figures(counted=23, completed=16, helpfulness_total=100, rated=16),
        "exposure": Figures(counted=5, completed=5, helpfulness_total=30, rated=5),
    }
    return Adherence(
        "clt_chart", start, end, end, overall, by_kind, weeks(start, end, due), practices, scores
    )


def test_a_long_window_still_draws(tmp_path: Path) -> None:
    start = datetime(2025, 11, 12, tzinfo=UTC)
    end = start + timedelta(days=366)
    due = [(start + timedelta(days=day), day % 3 != 0) for day in range(366)]
    month = _month()
    year = Adherence(
        "clt_year",
        start,
        end,
        end,
        month.overall,
        month.by_kind,
        weeks(start, end, due),
        month.exposure * 8,
        month.measures,
    )
    drawn = panels(parse(adherence_chart.render(year).encode()))
    assert len(values(drawn["completion"])) == 53  # 52 weeks and a 2-day one
    assert len(values(drawn["suds"])) == 40


@contextmanager
def serving(body: bytes, headers: dict[str, str]) -> Iterator[str]:
    """`body` at http://127.0.0.1:PORT/adherence.svg with `headers`, for as long as the block."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/adherence.svg"
    finally:
        server.shutdown()
        server.server_close()


def render_in_chromium(chromium: Path, tmp_path: Path, csp: str) -> tuple[list[str], int]:
    """Chromium opens the picture as the API serves it: its console messages, and the size of
    its screenshot."""
    headers = {**CHART_HEADERS, "Content-Type": SVG_MEDIA_TYPE, "Content-Security-Policy": csp}
    shot = tmp_path / "adherence.png"
    console: list[str] = []
    with serving(adherence_chart.render(_month()).encode(), headers) as url:
        run_headless(
            chromium,
            url,
            f"--screenshot={shot}",
            "--window-size=800,1284",
            "--hide-scrollbars",
            profile=tmp_path / "profile",
            console=console,
        )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return console, shot.stat().st_size


def test_chromium_renders_the_picture_under_its_csp(chromium: Path, tmp_path: Path) -> None:
    console, size = render_in_chromium(chromium, tmp_path, CHART_CSP)
    assert console == []
    assert size > 30_000  # a blank page is a few kilobytes
    # The check can fail: without style-src the browser refuses pygal's <style> and says so.
    refused, _ = render_in_chromium(chromium, tmp_path / "strict", "default-src 'none'")
    assert any("Content Security Policy" in line for line in refused), refused


def test_the_screenshot_in_docs_is_a_png() -> None:
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "run scripts/adherence_chart_screenshot.py"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 1000, (width, height)
    assert "adherence-chart.png" in (REPO / "docs" / "ADHERENCE.md").read_text()
