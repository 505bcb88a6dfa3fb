"""/fhir/R4 over HTTP, on both databases: what a completed PHQ-9 looks like to an EHR, who may
read it, search and paging, errors as OperationOutcome, and the Questionnaire import. Every
FHIR body here is also validated as R4 by tests.fhir_validation (through the test client)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.fhir import canonical as fhir
from app.fhir.examples import IMPORTABLE_QUESTIONNAIRE
from app.fhir.loinc import FREQUENCY, PHQ9
from tests.homework_helpers import complete, count_queries, freeze, occurrence_of
from tests.world import World

PHQ9_ANSWERS = {**{f"item_{n}": 2 for n in range(1, 9)}, "item_9": 1}  # 17: moderately severe


@pytest.fixture(autouse=True)
def now(world: World) -> None:
    freeze(world, "2026-11-22T12:00:00Z")


async def _phq9(client: httpx.AsyncClient, world: World, **body: Any) -> dict[str, Any]:
    occurrence = await occurrence_of(
        client, world, world.a.clients["A1"], template="tpl_builtin_phq9"
    )
    done = await complete(
        client, world, occurrence, status="done", answers=PHQ9_ANSWERS, helpfulness=4, **body
    )
    assert done.status_code == 201, done.text
    completion: dict[str, Any] = done.json()
    return completion


async def _read(client: httpx.AsyncClient, world: World, path: str, role: str = "system_a") -> Any:
    response = await client.get(f"/fhir/R4/{path}", headers=world.headers(role))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    return response.json()


async def test_a_completed_phq9_reaches_fhir_with_its_loinc_codes_and_score(
    client: httpx.AsyncClient, world: World
) -> None:
    completion = await _phq9(client, world, barriers=["forgot"])
    response = await _read(
        client, world, f"QuestionnaireResponse/{fhir.fhir_id(completion['id'])}", "clinician_a1"
    )
    assert response["status"] == "completed"
    assert response["authored"] == completion["completed_at"].replace("+00:00", "Z")
    assert response["questionnaire"] == f"{fhir.CANONICAL}/Questionnaire/tpl-builtin-phq9|1"
    assert response["subject"] == {
        "reference": f"Patient/{fhir.fhir_id(world.a.clients['A1'])}",
        "identifier": {
            "system": fhir.external_id_system(world.a.id, "client"),
            "value": "A-clt-1",
        },
    }
    first = response["item"][0]
    assert first["linkId"] == "item_1"
    assert first["answer"] == [
        {
            "valueCoding": {
                "system": fhir.LOINC,
                "code": FREQUENCY[2].code,
                "display": "More than half the days",
            }
        }
    ]
    extensions = {e["url"]: e for e in response["extension"]}
    assert extensions[fhir.BARRIER]["valueCode"] == "forgot"
    assert extensions[fhir.HELPFULNESS]["valueInteger"] == 4
    assert extensions[fhir.DISTRESS_FLAGGED]["valueBoolean"] is True  # item 9 above 0
    (score,) = response["contained"]
    assert score["code"]["coding"][0]["code"] == PHQ9.total.code == "44261-6"
    assert score["valueInteger"] == 17
    assert score["interpretation"][0]["coding"][0]["code"] == "moderately_severe"

    questionnaire = await _read(client, world, "Questionnaire/tpl-builtin-phq9", "clinician_a1")
    assert questionnaire["code"][0]["code"] == "44249-1"
    codes = {item["linkId"]: item["code"][0]["code"] for item in questionnaire["item"]}
    assert codes == PHQ9.items
    assert codes["item_1"] == "44250-9" and codes["item_9"] == "44260-8"

    task = await _read(client, world, f"Task/{fhir.fhir_id(completion['occurrence_id'])}")
    assert task["status"] == "completed"
    assert task["output"][0]["valueReference"]["reference"] == (
        f"QuestionnaireResponse/{fhir.fhir_id(completion['id'])}"
    )
    assert set(task["executionPeriod"]) == {"start", "end"}
    assert task["for"]["identifier"]["value"] == "A-clt-1"
    plan = await _read(client, world, f"CarePlan/{fhir.fhir_id(completion['assignment_id'])}")
    assert plan["status"] == "completed"  # a one-off, done
    assert plan["activity"][0]["detail"]["instantiatesCanonical"] == [response["questionnaire"]]
    patient = await _read(client, world, f"Patient/{fhir.fhir_id(world.a.clients['A1'])}")
    assert {i["value"] for i in patient["identifier"]} == {world.a.clients["A1"], "A-clt-1"}
    await _read(client, world, f"Practitioner/{fhir.fhir_id(world.a.clinicians['A1'])}")

    # Audited as the /v1 reads are: the response, the task, the plan and the patient.
    audit = await client.get(
        "/v1/audit-events",
        params={"client_id": world.a.clients["A1"], "limit": "200"},
        headers=world.headers("system_a"),
    )
    reads = {
        (e["resource_type"], e["resource_id"])
        for e in audit.json()["data"]
        if e["action"] == "read"
    }
    assert {
        ("completion", completion["id"]),
        ("occurrence", completion["occurrence_id"]),
        ("assignment", completion["assignment_id"]),
        ("client", world.a.clients["A1"]),
    } <= reads


async def test_what_the_caller_may_not_see_is_404_and_an_insiders_refusal_is_audited(
    client: httpx.AsyncClient, world: World
) -> None:
    completion = await _phq9(client, world)
    path = f"/fhir/R4/QuestionnaireResponse/{fhir.fhir_id(completion['id'])}"
    for role in ("clinician_a2", "client_a2", "system_b"):
        refused = await client.get(path, headers=world.headers(role))
        assert refused.status_code == 404, role
        assert refused.headers["content-type"] == "application/fhir+json"
        assert refused.json()["issue"][0]["code"] == "not-found"
    denied = await client.get(
        "/v1/audit-events", params={"outcome": "denied"}, headers=world.headers("system_a")
    )
    assert [e["actor_id"] for e in denied.json()["data"]] == [
        world.a.clients["A2"],
        world.a.clinicians["A2"],
    ]
    # A search by someone outside the care team finds nothing, rather than failing.
    found = await _read(
        client, world, f"QuestionnaireResponse?patient={world.a.clients['A1']}", "clinician_a2"
    )
    assert found["entry"] == []


async def test_search_filters_and_pages(client: httpx.AsyncClient, world: World) -> None:
    first = await _phq9(client, world)
    second = await _phq9(client, world)
    patient = f"Patient/{fhir.fhir_id(world.a.clients['A1'])}"
    page = await _read(client, world, f"QuestionnaireResponse?patient={patient}&_count=1")
    assert [e["resource"]["id"] for e in page["entry"]] == [fhir.fhir_id(second["id"])]
    (following,) = [link["url"] for link in page["link"] if link["relation"] == "next"]
    assert following.startswith("http://testserver/fhir/R4/QuestionnaireResponse?")
    rest = await _read(client, world, following.removeprefix("http://testserver/fhir/R4/"))
    assert [e["resource"]["id"] for e in rest["entry"]] == [fhir.fhir_id(first["id"])]
    assert [link["relation"] for link in rest["link"]] == ["self"]
    assert rest["entry"][0]["fullUrl"] == (
        f"http://testserver/fhir/R4/QuestionnaireResponse/{fhir.fhir_id(first['id'])}"
    )

    async def ids(query: str) -> list[str]:
        found = await _read(client, world, query)
        return [e["resource"]["id"] for e in found["entry"]]

    both = [fhir.fhir_id(second["id"]), fhir.fhir_id(first["id"])]
    assert await ids("QuestionnaireResponse?status=completed,amended") == both
    assert await ids("QuestionnaireResponse?status=stopped") == []
    assert await ids("QuestionnaireResponse?_lastUpdated=ge2026-11-22") == both
    assert await ids("QuestionnaireResponse?_lastUpdated=lt2026-11-22T12:00:00Z") == []
    assert await ids(f"QuestionnaireResponse?patient={world.a.clients['A2']}") == []
    assert len(await ids(f"Task?patient={patient}&status=completed")) == 2
    assert await ids(f"Task?patient={patient}&status=ready") == []
    assert len(await ids("CarePlan?status=completed")) == 2
    assert await ids("CarePlan?status=active") == []
    assert await ids("Patient?identifier=A-clt-2") == [fhir.fhir_id(world.a.clients["A2"])]
    by_our_id = f"Patient?identifier={fhir.ID_SYSTEM}|{world.a.clients['A1']}"
    assert await ids(by_our_id) == [fhir.fhir_id(world.a.clients["A1"])]
    assert await ids("Patient?identifier=https://elsewhere.example|A-clt-1") == []
    assert await ids("Practitioner?identifier=A-cln-1") == [fhir.fhir_id(world.a.clinicians["A1"])]
    assert "tpl-builtin-gad7" in await ids("Questionnaire?status=active")
    assert await ids(f"Questionnaire?url={fhir.CANONICAL}/Questionnaire/tpl-builtin-gad7|1") == [
        "tpl-builtin-gad7"
    ]
    assert await ids(f"Questionnaire?url={fhir.CANONICAL}/Questionnaire/tpl-builtin-gad7|2") == []


async def test_a_search_costs_the_same_queries_for_a_page_of_one_or_of_fifty(
    client: httpx.AsyncClient, world: World
) -> None:
    for _ in range(3):
        await _phq9(client, world)
    counts = {}
    for resource in ("QuestionnaireResponse", "Task", "CarePlan", "Patient"):
        # Once first: a template version's answer plan is read once per process, then kept.
        await _read(client, world, f"{resource}?_count=1")
        for size in (1, 50):
            with count_queries(world) as statements:
                await _read(client, world, f"{resource}?_count={size}")
            counts[resource, size] = len(statements)
        assert counts[resource, 1] == counts[resource, 50], resource


async def test_errors_are_operation_outcomes_naming_the_parameter(
    client: httpx.AsyncClient, world: World
) -> None:
    async def refused(query: str, role: str = "system_a") -> dict[str, Any]:
        response = await client.get(f"/fhir/R4/{query}", headers=world.headers(role))
        assert response.status_code in (401, 403, 422), response.text
        assert response.headers["content-type"] == "application/fhir+json"
        body: dict[str, Any] = response.json()
        assert body["resourceType"] == "OperationOutcome"
        return body

    unknown = await refused("QuestionnaireResponse?subject=Patient/x")
    assert unknown["issue"][1]["expression"] == ["subject"]
    assert (await refused("Task?_lastUpdated=yesterday"))["issue"][1]["expression"] == [
        "_lastUpdated"
    ]
    assert (await refused("CarePlan?status=paused"))["issue"][1]["expression"] == ["status"]
    assert (await refused("Patient?_count=0"))["issue"][1]["expression"] == ["_count"]
    assert (await refused("Patient", "none"))["issue"][0]["code"] == "login"
    # A client holds clients.r but not clients.s: no searching for other patients.
    assert (await refused("Patient", "client_a1"))["issue"][0]["code"] == "forbidden"


async def test_a_questionnaire_imports_as_a_custom_template_and_reads_back_the_same(
    client: httpx.AsyncClient, world: World
) -> None:
    imported = await client.post(
        "/v1/templates/from-questionnaire",
        json=IMPORTABLE_QUESTIONNAIRE,
        headers={**world.headers("clinician_a1"), "content-type": "application/fhir+json"},
    )
    assert imported.status_code == 201, imported.text
    template = imported.json()
    assert (template["kind"], template["name"], template["estimated_minutes"]) == (
        "custom",
        "Worry time",
        15,
    )
    back = await _read(client, world, f"Questionnaire/{fhir.fhir_id(template['id'])}")
    assert back["item"] == IMPORTABLE_QUESTIONNAIRE["item"]

    conditional = {
        **IMPORTABLE_QUESTIONNAIRE,
        "item": [
            *IMPORTABLE_QUESTIONNAIRE["item"],
            {
                "linkId": "why",
                "type": "string",
                "enableWhen": [{"question": "worry", "operator": "exists", "answerBoolean": True}],
            },
        ],
    }
    refused = await client.post(
        "/v1/templates/from-questionnaire", json=conditional, headers=world.headers("system_a")
    )
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["pointer"] == "/item/2/enableWhen"
    assert "'why'" in error["message"]
