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
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from app.core import rate_limits
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.openapi_document import json_example
from app.core.routing import TransactionRoute
from app.core.scopes import ALL_SCOPES
from app.core.tokens import TokenService, VerifiedToken
from app.models import OAuthClient
from app.services import oauth, tenants
from app.services.oauth import CLIENT_CREDENTIALS, TOKEN_EXCHANGE, OAuthError

router = APIRouter(tags=["oauth"], route_class=TransactionRoute)
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
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
            },
            "examples": {
                "client_credentials": {
                    "summary": "A system token for your backend (client authenticated by Basic)",
                    "value": {
                        "grant_type": CLIENT_CREDENTIALS,
                        "scope": "system/clients.cruds system/assignments.cruds",
                    },
                },
                "client_credentials_post": {
                    "summary": "The same, with the client's credentials in the form",
                    "value": {
                        "grant_type": CLIENT_CREDENTIALS,
                        "client_id": "oac_01jc8a0c2e4g6j8m0p2r4t6w8y",
                        "client_secret": "hws_example-only-not-a-real-secret",
                    },
                },
                "token_exchange": {
                    "summary": "A client's token, naming the client by your own id",
                    "value": {
                        "grant_type": TOKEN_EXCHANGE,
                        "subject_token": "patient-4821",
                        "subject_token_type": "urn:homework:token-type:client-external-id",
                        "scope": "client/assignments.rus client/completions.crus",
                    },
                },
            },
        }
    },
}
# The JWT parts of the examples: a real header shape, a shortened payload, no real signature.
_JWT_HEADER = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IlVzVmRTVXE2WUVjWExTbzNnVy10ZURla2FvRHoxcWJP"
    "UXZUcUhOczcwYmMifQ"
)
_JWT_SIGNATURE = "c2lnbmF0dXJlLCBub3QgYSByZWFsIG9uZQ"


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": f"{_JWT_HEADER}."
                    "eyJpc3MiOiJodHRwczovL2FwaS5ob21ld29yay5leGFtcGxlIiwic3ViIjoib2FjXzAxamM4YTBj"
                    f"MmU0ZzZqOG0wcDJyNHQ2dzh5In0.{_JWT_SIGNATURE}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": "system/assignments.cruds system/clients.cruds",
                },
                {
                    "access_token": f"{_JWT_HEADER}."
                    "eyJpc3MiOiJodHRwczovL2FwaS5ob21ld29yay5leGFtcGxlIiwic3ViIjoiY2x0XzAxamQzeDhx"
                    f"MG0ydjdrM2M5cjV0Nnk4dzFhIn0.{_JWT_SIGNATURE}",
                    "token_type": "Bearer",
                    "expires_in": 900,
                    "scope": "client/assignments.rus client/completions.crus",
                    "issued_token_type": oauth.ISSUED_ACCESS_TOKEN,
                },
            ]
        }
    )

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str
    issued_token_type: str | None = None


class OAuthErrorBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_scope",
                    "error_description": "The requested scope exceeds what this client may hold.",
                }
            ]
        }
    )

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


async def _authenticated_client(
    request: Request, session: SessionDep, form: dict[str, str]
) -> OAuthClient:
    """The calling OAuth client, as every endpoint of ours that takes client credentials
    authenticates it: under the same failure budget, so none of them is a way to guess."""
    client_id, secret = _client_credentials(request, form)
    await rate_limits.refuse_if_failing(request, client_id)
    client = await tenants.authenticate_client(session, client_id, secret)
    if client is None:
        await rate_limits.count_token_failure(request, client_id)
        raise OAuthError("invalid_client", "Unknown client or wrong secret.", 401)
    return client


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
    responses={
        400: {"model": OAuthErrorBody},
        401: {"model": OAuthErrorBody},
        **problem_responses(429),
    },
)
async def token(request: Request, session: SessionDep) -> Any:
    tokens: TokenService = request.app.state.tokens
    settings = request.app.state.settings
    await rate_limits.count_token_request(request)
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if grant_type not in (CLIENT_CREDENTIALS, TOKEN_EXCHANGE):
            raise OAuthError("unsupported_grant_type", "Use client_credentials or token exchange.")
        client = await _authenticated_client(request, session, form)
        await rate_limits.count_token_issued(request, client.id, client.tenant_id)
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


def _token_form_body(example: dict[str, str]) -> dict[str, Any]:
    """RFC 7009's and RFC 7662's request: the token, a hint we may ignore, and the client's
    credentials (Basic, or in the form as at the token endpoint)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["token"],
                        "properties": {
                            "token": {"type": "string"},
                            "token_type_hint": {"type": "string", "examples": ["access_token"]},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                        },
                    },
                    "example": example,
                }
            },
        }
    }


class IntrospectionResponse(BaseModel):
    """RFC 7662 section 2.2; an inactive token has `active: false` and nothing else."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": True,
                    "scope": "client/assignments.rus client/completions.crus",
                    "client_id": "oac_01jc8a0c2e4g6j8m0p2r4t6w8y",
                    "token_type": "Bearer",
                    "exp": 1796223600,
                    "iat": 1796222700,
                    "nbf": 1796222700,
                    "sub": "clt_01jd3x8q0m2v7k3c9r5t6y8w1a",
                    "aud": "homework-api",
                    "iss": "https://api.homework.example",
                    "jti": "tok_01jd3x8q0m2v7k3c9r5t6y8w1b",
                    "tenant_id": "ten_01jc8a0c2e4g6j8m0p2r4t6w8x",
                    "subject_kind": "client",
                },
                {"active": False},
            ]
        }
    )

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None
    tenant_id: str | None = None
    subject_kind: str | None = None


async def _tenants_token(request: Request, session: SessionDep) -> tuple[str, VerifiedToken | None]:
    """Both endpoints' common part: the form, the authenticated client, and the token if it is
    one of ours for that client's tenant (else None)."""
    await rate_limits.count_token_request(request)
    form = await _form(request)
    client = await _authenticated_client(request, session, form)
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "The token parameter is required.")
    verified = await oauth.tenants_token(request.app.state.tokens, client, token)
    return token, verified


@router.post(
    "/oauth/revoke",
    operation_id="revoke_token",
    summary="Revoke an access token (RFC 7009)",
    description=(
        "Client-authenticated like the token endpoint. Any token of your tenant may be revoked "
        "(your system tokens, the clinician and client tokens you exchanged for): from the next "
        "request on it is `401 invalid_token` in this API process, within 2 seconds in every "
        "other. 200 with an empty body whatever the token was (unknown, expired, another "
        "tenant's, already revoked), as RFC 7009 says: the answer tells nothing about it."
    ),
    openapi_extra=_token_form_body({"token": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9…"}),
    responses={
        200: {"description": "Revoked, or nothing to revoke.", "content": {}},
        400: {"model": OAuthErrorBody},
        401: {"model": OAuthErrorBody},
        **problem_responses(429),
    },
    response_class=Response,
)
async def revoke(request: Request, session: SessionDep) -> Response:
    try:
        _, verified = await _tenants_token(request, session)
    except OAuthError as exc:
        return _error(exc)
    if verified is not None:
        await oauth.revoke_token(session, request.app.state.settings, verified)
    return Response(status_code=200, headers=NO_STORE)


@router.post(
    "/oauth/introspect",
    operation_id="introspect_token",
    summary="Is this access token active? (RFC 7662)",
    description=(
        "Client-authenticated like the token endpoint. For a token of your tenant that is "
        "valid and not revoked: `active: true` with its claims. Anything else (expired, "
        "revoked, its person erased or deleted, its OAuth client revoked, forged, another "
        "tenant's, an identity provider's): `{\"active\": false}` and nothing more. Read from "
        "the database, so a revocation shows at once."
    ),
    openapi_extra=_token_form_body({"token": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9…"}),
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    responses={
        400: {"model": OAuthErrorBody},
        401: {"model": OAuthErrorBody},
        **problem_responses(429),
    },
)
async def introspect(request: Request, session: SessionDep) -> Any:
    try:
        token, verified = await _tenants_token(request, session)
    except OAuthError as exc:
        return _error(exc)
    settings = request.app.state.settings
    answer = (
        {"active": False}
        if verified is None
        else await oauth.introspect(session, settings, verified, token)
    )
    return JSONResponse(
        IntrospectionResponse(**answer).model_dump(exclude_none=True), headers=NO_STORE
    )


JWKS_EXAMPLE = {
    "keys": [
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "YdByUykf1aW8f94E-z14S-I-PbB7W-Cgw4-eeyNkjdQ",
            "y": "J_2po56L9wfTAOTKp2gWJWCXrvnl7_4yJJBGEIYIZVo",
            "kid": "UsVdSUq6YEcXLSo3gW-teDekaoDz1qbOQvTqHNs70bc",
            "use": "sig",
            "alg": "ES256",
        }
    ]
}


@router.get(
    "/.well-known/jwks.json",
    operation_id="get_jwks",
    summary="Our public signing keys",
    description="The JWK Set that verifies our access tokens: pick the key by the token's "
    "`kid`. Every configured key is published and the first one signs, so tokens signed by "
    "a retiring key keep verifying until they expire. No token needed.",
    responses=json_example(200, JWKS_EXAMPLE),
)
async def jwks(request: Request) -> dict[str, Any]:
    tokens: TokenService = request.app.state.tokens
    return tokens.keys.jwks()


def _metadata(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": [CLIENT_CREDENTIALS, TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "scopes_supported": [str(s) for s in ALL_SCOPES.scopes()],
        # RFC 8414 section 2 makes this member REQUIRED, and it lists the `response_type`
        # values of the authorization endpoint. We have none (no code, no implicit flow: only
        # the token endpoint's grants above), so the list is empty rather than absent.
        "response_types_supported": [],
        # No `token_endpoint_auth_signing_alg_values_supported`: RFC 8414 ties it to the JWT
        # client authentication methods (private_key_jwt, client_secret_jwt), which we do not
        # offer; our access tokens' algorithms are in the JWKS.
    }


@router.get(
    "/.well-known/oauth-authorization-server",
    operation_id="get_authorization_server_metadata",
    summary="OAuth 2.0 authorization server metadata (RFC 8414)",
    description="Our issuer, where the token, revocation and introspection endpoints and the "
    "JWKS are, the grant types and client authentication methods they accept, and every scope "
    "a token may carry. No token needed.",
    responses=json_example(200, _metadata("https://api.homework.example")),
)
async def metadata(request: Request) -> dict[str, Any]:
    return _metadata(request.app.state.settings.issuer.rstrip("/"))
