"""What a revoked token's request must look like, for the revocation tests."""

from __future__ import annotations

import httpx


def assert_refused(response: httpx.Response, description: str) -> None:
    """A 401 problem+json with `invalid_token` and the reason, in the body and the challenge."""
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == "invalid_token"
    assert response.json()["detail"] == description
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="homework", error="invalid_token", error_description="{description}"'
    )
