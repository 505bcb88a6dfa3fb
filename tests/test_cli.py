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
