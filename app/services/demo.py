"""Demo data for `make run`: one tenant, one clinician, one client on one care team, and the
curl commands that use them. Made once; the credentials are kept beside the database because
the secret cannot be shown again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CareTeamMember, Client, Clinician
from app.services import tenants

DEMO_FILE = Path(".homework/demo.json")
READ_TOKEN = """python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'"""


async def seed(session: AsyncSession) -> dict[str, Any]:
    issued = await tenants.create_tenant(session, "Demo clinic")
    clinician = Clinician(
        tenant_id=issued.tenant_id, external_id="demo-clinician", display_name="Dr Demo"
    )
    client = Client(
        tenant_id=issued.tenant_id,
        external_id="demo-client",
        display_name="Alex Demo",
        time_zone="Europe/London",
        locale="en-GB",
        quiet_hours_start="22:00",
        quiet_hours_end="07:00",
    )
    session.add_all([clinician, client])
    await session.flush()
    session.add(
        CareTeamMember(client_id=client.id, clinician_id=clinician.id, tenant_id=client.tenant_id)
    )
    await session.flush()
    return {
        "tenant_id": issued.tenant_id,
        "client_id": issued.client_id,
        "client_secret": issued.client_secret,
        "clinician": clinician.id,
        "client": client.id,
    }


def instructions(demo: dict[str, Any], base_url: str) -> str:
    credentials = f"{demo['client_id']}:{demo['client_secret']}"
    return f"""
Demo tenant ready (credentials kept in {DEMO_FILE}). Paste these:

  # a system token for the vendor backend
  TOKEN=$(curl -s -u '{credentials}' -d grant_type=client_credentials \\
    {base_url}/oauth/token | {READ_TOKEN})
  curl -s -H "Authorization: Bearer $TOKEN" {base_url}/v1/clients

  # a 15-minute token bound to the demo client, found by the vendor's own id
  CLIENT_TOKEN=$(curl -s -u '{credentials}' \\
    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\
    -d subject_token=demo-client \\
    -d subject_token_type=urn:homework:token-type:client-external-id \\
    {base_url}/oauth/token | {READ_TOKEN})
  curl -s -H "Authorization: Bearer $CLIENT_TOKEN" {base_url}/v1/clients/{demo["client"]}

  # who read what
  curl -s -H "Authorization: Bearer $TOKEN" {base_url}/v1/audit-events
"""


def load() -> dict[str, Any] | None:
    if not DEMO_FILE.exists():
        return None
    data: dict[str, Any] = json.loads(DEMO_FILE.read_text())
    return data


def save(demo: dict[str, Any]) -> None:
    DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEMO_FILE.write_text(json.dumps(demo, indent=2))
    DEMO_FILE.chmod(0o600)
