from pathlib import Path

from app.core.openapi_document import render
from app.main import create_app

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_committed_document_matches_the_app() -> None:
    assert COMMITTED.read_text() == render(create_app()), (
        "openapi/openapi.json has drifted from the app: run `homework openapi` and commit it"
    )
