"""The demo (`make run`, `homework serve --demo`): four weeks of history worth looking at, read
through the real API with the demo's own credentials, made once, the same for the same start."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.core.clock import FixedClock
from app.models import Assignment, Client, Completion, Tenant
from app.services import demo
from tests import served

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE = "urn:homework:token-type"


async def _token(http: httpx.AsyncClient, seeded: dict[str, Any], **form: str) -> dict[str, str]:
    answer = await http.post(
        "/oauth/token",
        data=form or {"grant_type": "client_credentials"},
        auth=(seeded["client_id"], seeded["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _clinician(http: httpx.AsyncClient, seeded: dict[str, Any], external_id: str):  # type: ignore[no-untyped-def]
    return await _token(
        http,
        seeded,
        grant_type=EXCHANGE,
        subject_token=external_id,
        subject_token_type=f"{TOKEN_TYPE}:clinician-external-id",
    )


async def _get(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    answer = await http.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _falling(values: list[int]) -> bool:
    return all(later < earlier for earlier, later in itertools.pairwise(values))


async def test_the_demo_shows_four_weeks_of_figures_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    seeded, made = await demo.ensure(app.state.database, tmp_path / "demo.json", now)
    assert made
    okafor = await _clinician(client, seeded, "demo-clinician")
    reyes = await _clinician(client, seeded, "demo-clinician-2")
    alex, sam = seeded["clients"]["demo-client"], seeded["clients"]["demo-client-2"]
    assert (
        seeded["client"] == alex and seeded["clinician"] == seeded["clinicians"]["demo-clinician"]
    )

    # The caseloads: every client with a 28-day rate, recent helpfulness and a last completion;
    # Alex and Lee are on both; Sam, with the one open distress flag, comes first.
    caseloads = {}
    for external_id, headers in (("demo-clinician", okafor), ("demo-clinician-2", reyes)):
        clinician = seeded["clinicians"][external_id]
        caseloads[external_id] = await _get(client, f"/v1/clinicians/{clinician}/caseload", headers)
    okafor_rows = caseloads["demo-clinician"]["clients"]
    reyes_rows = caseloads["demo-clinician-2"]["clients"]
    assert {r["external_id"] for r in okafor_rows} == {
        "demo-client",
        "demo-client-2",
        "demo-client-3",
        "demo-client-5",
    }
    assert {r["external_id"] for r in reyes_rows} == {
        "demo-client",
        "demo-client-4",
        "demo-client-5",
    }
    for row in okafor_rows + reyes_rows:
        assert row["completion_rate_28d"] is not None, row
        assert 0 < row["completion_rate_28d"] <= 1, row
        assert row["helpfulness_recent"] is not None, row
        assert row["last_completed_at"] is not None, row
        assert row["next_session_at"] is not None, row
    assert okafor_rows[0]["client_id"] == sam
    assert okafor_rows[0]["open_distress_flags"] == 1
    assert sum(r["open_distress_flags"] for r in okafor_rows + reyes_rows) == 1

    # Alex's adherence: rates, streaks and helpfulness; the exposure hierarchy's distress
    # falling step by step; PHQ-9 and GAD-7 at intake and in week 4, both better.
    adherence = await _get(client, f"/v1/clients/{alex}/adherence", okafor)
    overall = adherence["overall"]
    assert overall["counted"] > 20
    assert 0.7 <= overall["completion_rate"] < 1
    assert overall["on_time_rate"] is not None and overall["on_time_rate"] > 0.5
    assert overall["mean_helpfulness"] is not None and overall["rated"] > 10
    assert overall["best_streak"] >= 3
    assert sum(overall["barriers"].values()) > 0
    assert overall["barriers"]["felt_overwhelmed"] == 0
    assert {"mood_log", "thought_record", "exposure", "phq9", "gad7"} <= set(adherence["by_kind"])
    exposure = adherence["exposure"]
    assert len(exposure) == 4
    assert exposure[0]["step"] == "Stand at the bus stop for ten minutes"
    for rating in ("suds_before", "suds_peak", "suds_after"):
        assert _falling([p[rating] for p in exposure]), exposure
    phq9 = [p["score"] for p in adherence["measures"]["phq9"]]
    gad7 = [p["score"] for p in adherence["measures"]["gad7"]]
    assert phq9 == [16, 9] and gad7 == [14, 8]

    # What Dr Okafor reads before Alex's next session.
    summary = await _get(client, f"/v1/clients/{alex}/session-summary", okafor)
    assert summary["done"] and summary["counts"]["done"] == len(summary["done"])
    assert summary["mean_helpfulness"] is not None and summary["rated"] > 0
    assert summary["next_session_at"] is not None
    assert summary["measures"]["phq9"]["score"] == 9
    assert summary["measures"]["phq9"]["previous_score"] == 16
    assert summary["measures"]["phq9"]["change"] == -7
    assert summary["measures"]["gad7"]["change"] == -6
    assert summary["distress_flags"] == []

    # Sam is the one not getting better: work not done (with barriers) and missed, a PHQ-9
    # that rose, and item 9 above 0, which raised the distress flag nobody has reviewed yet.
    sam_adherence = await _get(client, f"/v1/clients/{sam}/adherence", okafor)
    assert sam_adherence["overall"]["completion_rate"] < overall["completion_rate"]
    assert sum(sam_adherence["overall"]["barriers"].values()) > 0
    assert [p["score"] for p in sam_adherence["measures"]["phq9"]] == [14, 17]
    sam_summary = await _get(client, f"/v1/clients/{sam}/session-summary", okafor)
    assert sam_summary["not_done"]
    [flag] = sam_summary["distress_flags"]
    assert flag["kind"] == "phq9" and flag["reasons"] == ["answer:/item_9"]
    assert flag["reviewed_at"] is None
    system = await _token(client, seeded)
    flagged = await _get(client, "/v1/completions?distress_flagged=true", system)
    assert [c["id"] for c in flagged["data"]] == [flag["completion_id"]]

    # Clinicians reviewed some of the work; missed work was marked missed by the worker.
    reviewed = await _get(client, "/v1/completions?reviewed=true&limit=200", system)
    assert len(reviewed["data"]) >= 5
    assert {c["review"]["reviewed_by"] for c in reviewed["data"]} == set(
        seeded["clinicians"].values()
    )
    missed = await _get(client, "/v1/events?type=occurrence.missed&limit=200", system)
    assert missed["data"]

    # Every kind of homework, as FHIR: each page is validated as R4 by the test client
    # (tests.fhir_validation), scored measures, repeating groups and all.
    for resource in ("QuestionnaireResponse", "Task", "CarePlan"):
        path: str | None = f"/fhir/R4/{resource}?_count=200"
        entries = []
        while path:
            page = await _get(client, path, system)
            entries += page["entry"]
            path = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
        assert len({e["resource"]["id"] for e in entries}) == len(entries) > 10, resource

    # The history is dated when it happened: completions, assignments and their occurrences
    # lie in the four weeks before now.
    async with app.state.database.sessionmaker() as session:
        first_completed = await session.scalar(select(func.min(Completion.completed_at)))
        first_assigned = await session.scalar(select(func.min(Assignment.created_at)))
    assert first_completed is not None and first_assigned is not None
    assert now - timedelta(days=28) < first_assigned < first_completed < now - timedelta(days=25)

    # Made once: a second start finds the tenant and seeds nothing.
    again, made = await demo.ensure(app.state.database, tmp_path / "demo.json", now)
    assert not made and again == seeded
    async with app.state.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Tenant)) == 1
        assert await session.scalar(select(func.count()).select_from(Client)) == 5


async def test_the_same_start_gives_the_same_figures(
    app: FastAPI, client: httpx.AsyncClient, backend: str
) -> None:
    if backend != "sqlite":  # the seed's choices are the generator's, whatever the database
        pytest.skip("determinism is the seed's, checked once on SQLite")
    now = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    app.state.clock = FixedClock(now)
    first = await demo.seed(app.state.database, now)
    second = await demo.seed(app.state.database, now)
    assert first["tenant_id"] != second["tenant_id"]

    async def figures(seeded: dict[str, Any]) -> list[Any]:
        headers = await _clinician(client, seeded, "demo-clinician")
        found = []
        for alex_or_sam in ("demo-client", "demo-client-2"):
            client_id = seeded["clients"][alex_or_sam]
            adherence = await _get(client, f"/v1/clients/{client_id}/adherence", headers)
            summary = await _get(client, f"/v1/clients/{client_id}/session-summary", headers)
            found += [
                adherence["overall"],
                adherence["by_kind"],
                [(p["step"], p["suds_peak"], p["completed_at"]) for p in adherence["exposure"]],
                [(m["score"], m["completed_at"]) for m in adherence["measures"]["phq9"]],
                summary["counts"],
                summary["mean_helpfulness"],
            ]
        clinician = seeded["clinicians"]["demo-clinician"]
        caseload = await _get(client, f"/v1/clinicians/{clinician}/caseload", headers)
        found.append([_without_ids(row) for row in caseload["clients"]])
        return found

    assert await figures(first) == await figures(second)


def _without_ids(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "client_id"}


def test_serve_demo_on_an_empty_directory_prints_ids_with_figures(tmp_path: Path) -> None:
    port = served.free_port()
    env = served.service_env(database_url=f"sqlite+aiosqlite:///{tmp_path}/homework.db")
    command = ("homework", "serve", "--demo", "--port", str(port))
    with served.running(command, port=port, cwd=tmp_path, env=env):
        printed = (tmp_path / f"server-{port}.log").read_text()
        base = f"http://127.0.0.1:{port}"
        assert f"BASE={base}" in printed
        (credentials,) = re.findall(r"CREDS='(oac_\w+):(hws_[\w-]+)'", printed)
        (caseload,) = re.findall(r"\$BASE(/v1/clinicians/cln_\w+/caseload)", printed)
        (adherence,) = re.findall(r"\$BASE(/v1/clients/clt_\w+/adherence)", printed)
        (summary,) = re.findall(r"\$BASE(/v1/clients/clt_\w+/session-summary)", printed)
        with httpx.Client(base_url=base, trust_env=False) as http:
            answer = http.post(
                "/oauth/token",
                auth=credentials,
                data={
                    "grant_type": EXCHANGE,
                    "subject_token": "demo-clinician",
                    "subject_token_type": f"{TOKEN_TYPE}:clinician-external-id",
                },
            )
            assert answer.status_code == 200, answer.text
            headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            rows = http.get(caseload, headers=headers).json()["clients"]
            figures = http.get(adherence, headers=headers).json()
            before_session = http.get(summary, headers=headers).json()
    assert rows and all(row["completion_rate_28d"] is not None for row in rows)
    assert figures["overall"]["completion_rate"] is not None
    assert figures["overall"]["on_time_rate"] is not None
    assert figures["overall"]["mean_helpfulness"] is not None
    assert len(figures["measures"]["phq9"]) == 2 and figures["exposure"]
    assert before_session["mean_helpfulness"] is not None
    assert before_session["measures"]["phq9"]["change"] is not None
    assert (tmp_path / ".homework" / "demo.json").exists()
