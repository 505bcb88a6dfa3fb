from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from app.core import migrations


def test_migrate_upgrade_and_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    from app.core.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    try:
        before = runner.invoke(main, ["migrate", "current"])
        assert "current: none" in before.output
        assert runner.invoke(main, ["migrate", "upgrade"]).exit_code == 0
        after = runner.invoke(main, ["migrate", "current"])
        assert f"current: {migrations.head_revision()}" in after.output
        assert runner.invoke(main, ["migrate", "downgrade", "base"]).exit_code == 0
        assert "current: none" in runner.invoke(main, ["migrate", "current"]).output
    finally:
        get_settings.cache_clear()


def test_openapi_check_fails_on_drift_and_passes_once_written(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "openapi.json"
    target.write_text("{}\n")
    stale = runner.invoke(main, ["openapi", "--check", "--output", str(target)])
    assert stale.exit_code == 1
    assert runner.invoke(main, ["openapi", "--output", str(target)]).exit_code == 0
    assert runner.invoke(main, ["openapi", "--check", "--output", str(target)]).exit_code == 0


def test_tenants_create_prints_credentials_once_and_list_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from app.core.config import get_settings

    monkeypatch.setenv("HOMEWORK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/t.db")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(main, ["migrate", "upgrade"]).exit_code == 0
        created = runner.invoke(main, ["tenants", "create", "Acme Health"])
        assert created.exit_code == 0, created.output
        issued = json.loads(created.output)
        assert issued["tenant_id"].startswith("ten_")
        assert issued["client_secret"].startswith("hws_")
        listed = runner.invoke(main, ["tenants", "list"])
        assert "Acme Health" in listed.output and "(1 OAuth clients)" in listed.output
        assert issued["client_secret"] not in listed.output
        added = runner.invoke(
            main,
            [
                "tenants",
                "add-client",
                issued["tenant_id"],
                "--name",
                "reports",
                "--scope",
                "system/audit.rs",
            ],
        )
        assert added.exit_code == 0, added.output
        assert json.loads(added.output)["scope"] == "system/audit.rs"
        bad = runner.invoke(
            main, ["tenants", "add-client", issued["tenant_id"], "--name", "x", "--scope", "root"]
        )
        assert bad.exit_code != 0
        trusted = runner.invoke(
            main,
            [
                "tenants",
                "trust-idp",
                issued["tenant_id"],
                "--issuer",
                "https://id.example/",
                "--jwks-url",
                "https://127.0.0.1/jwks",
                "--audience",
                "homework-api",
            ],
        )
        assert trusted.exit_code != 0
        assert "private address" in trusted.output
    finally:
        get_settings.cache_clear()
