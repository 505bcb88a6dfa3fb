"""OAuth 2.0: the token endpoint (RFC 6749, RFC 8693), our JWKS and metadata (RFC 8414).

The token endpoint answers errors in RFC 6749's own format, not problem+json: OAuth client
libraries expect `error` and `error_description`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.core.db import SessionDep
from app.core.scopes import ALL_SCOPES
from app.core.tokens import TokenService
from app.services import oauth, tenants
from app.services.oauth import CLIENT_CREDENTIALS, TOKEN_EXCHANGE, OAuthError

router = APIRouter(tags=["oauth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

TOKEN_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": [CLIENT_CREDENTIALS, TOKEN_EXCHANGE]},
                    "scope": {"type": "string", "examples": ["system/clients.cruds"]},
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                    "subject_token": {"type": "string"},
                    "subject_token_type": {
                        "type": "string",
                        "enum": sorted(oauth.SUBJECT_TOKEN_TYPES),
                    },
                },
            }
        }
    },
}


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str
    issued_token_type: str | None = None


class OAuthErrorBody(BaseModel):
    error: str
    error_description: str


def _error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="homework"'
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=headers,
    )


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "The body is not UTF-8.") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"The parameter {key} appears more than once.")
        form[key] = value
    return form


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Use one way to authenticate the client, not two.")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from exc
        # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    raise OAuthError("invalid_client", "Client authentication is required.", 401)


@router.post(
    "/oauth/token",
    operation_id="create_token",
    summary="Get an access token",
    description=(
        "`client_credentials` gives a `system` token for the calling client's tenant. "
        "Token exchange (RFC 8693) gives a short-lived token bound to one clinician or client, "
        "named by our id or by the vendor's `external_id` through `subject_token_type`."
    ),
    openapi_extra={"requestBody": TOKEN_REQUEST_BODY},
    response_model=TokenResponse,
    responses={400: {"model": OAuthErrorBody}, 401: {"model": OAuthErrorBody}},
)
async def token(request: Request, session: SessionDep) -> Any:
    tokens: TokenService = request.app.state.tokens
    settings = request.app.state.settings
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if grant_type not in (CLIENT_CREDENTIALS, TOKEN_EXCHANGE):
            raise OAuthError("unsupported_grant_type", "Use client_credentials or token exchange.")
        client_id, secret = _client_credentials(request, form)
        client = await tenants.authenticate_client(session, client_id, secret)
        if client is None:
            raise OAuthError("invalid_client", "Unknown client or wrong secret.", 401)
        if grant_type == CLIENT_CREDENTIALS:
            grant = oauth.client_credentials(client, form.get("scope"))
            ttl = settings.system_token_ttl_seconds
        else:
            grant = await oauth.token_exchange(session, client, form)
            ttl = settings.user_token_ttl_seconds
    except OAuthError as exc:
        return _error(exc)
    access_token, expires_in = tokens.issue(
        tenant_id=client.tenant_id,
        kind=grant.kind,
        subject=grant.subject,
        client_id=client.id,
        scopes=grant.scopes,
        ttl_seconds=ttl,
    )
    body = TokenResponse(
        access_token=access_token,
        expires_in=expires_in,
        scope=str(grant.scopes),
        issued_token_type=oauth.ISSUED_ACCESS_TOKEN if grant_type == TOKEN_EXCHANGE else None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


@router.get("/.well-known/jwks.json", operation_id="get_jwks", summary="Our public signing keys")
async def jwks(request: Request) -> dict[str, Any]:
    tokens: TokenService = request.app.state.tokens
    return tokens.keys.jwks()


@router.get(
    "/.well-known/oauth-authorization-server",
    operation_id="get_authorization_server_metadata",
    summary="OAuth 2.0 authorization server metadata (RFC 8414)",
)
async def metadata(request: Request) -> dict[str, Any]:
    issuer = request.app.state.settings.issuer.rstrip("/")
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": [CLIENT_CREDENTIALS, TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [str(s) for s in ALL_SCOPES.scopes()],
        "response_types_supported": ["token"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
    }
