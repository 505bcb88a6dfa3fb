"""`homework tenants clients / show-client / rotate-secret / revoke-client`: the operator's
side of the OAuth clients' life, audited as the operator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.core.config import get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/t.db")
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", "upgrade"]).exit_code == 0
    yield runner
    get_settings.cache_clear()


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_the_operator_lists_rotates_and_revokes(cli: CliRunner) -> None:
    issued = json.loads(_ok(cli.invoke(main, ["tenants", "create", "Acme"])))
    client_id, first_secret = issued["client_id"], issued["client_secret"]

    listed = _ok(cli.invoke(main, ["tenants", "clients", issued["tenant_id"]]))
    assert json.loads(listed)["id"] == client_id
    assert first_secret not in listed

    rotated = json.loads(
        _ok(
            cli.invoke(
                main, ["tenants", "rotate-secret", client_id, "--old-secret-expires-in", "60"]
            )
        )
    )
    assert rotated["client_secret"].startswith("hws_")
    assert rotated["client_secret"] != first_secret
    assert rotated["previous_secret_expires_at"] is not None

    shown = json.loads(_ok(cli.invoke(main, ["tenants", "show-client", client_id])))
    assert "client_secret" not in shown
    assert shown["secret_rotated_at"] is not None

    revoked = json.loads(_ok(cli.invoke(main, ["tenants", "revoke-client", client_id])))
    assert revoked["revoked_at"] is not None
    assert revoked["previous_secret_expires_at"] is None
    again = cli.invoke(main, ["tenants", "rotate-secret", client_id])
    assert again.exit_code == 2
    assert "revoked" in again.output
    unknown = cli.invoke(main, ["tenants", "revoke-client", "oac_nope"])
    assert unknown.exit_code == 2
    assert "no OAuth client oac_nope" in unknown.output
