"""The signing keys of tenants' identity providers, fetched over HTTP and cached.

A token naming a `kid` we do not hold triggers at most one refetch per `min_refetch_seconds`
per JWKS URL, so a flood of forged kids cannot make us hammer the IdP (or be used to make us
fetch anything at all faster than that).

A tenant whose IdP key is compromised forces a refresh: the keys held are dropped (not kept
through a failed fetch, as on an ordinary refresh) and fetched again for the next token. The
API process that takes the request does so at once; the others learn it from the provider's
`distrust_before` mark, which they read with the provider, and honour each mark once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import httpx
from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JOSEError

from app.core.outbound import UnsafeUrl

ALLOWED_IDP_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})
log = logging.getLogger("homework.jwks")


@dataclass
class _Entry:
    keys: dict[str, tuple[Key, str]] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    distrusted_before: float = float("-inf")
    """The latest forced-refresh mark honoured: keys fetched before it are not trusted."""
    generation: int = 0
    """Bumped when keys are distrusted, so that a fetch already in flight does not restore
    them."""


class JwksCache:
    def __init__(
        self, http: httpx.AsyncClient, *, ttl_seconds: float, min_refetch_seconds: float
    ) -> None:
        self.http = http
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self._entries: dict[str, _Entry] = {}

    async def find(
        self, jwks_url: str, kid: str, *, distrust_before: float = float("-inf")
    ) -> tuple[Key, str] | None:
        entry = self._entries.setdefault(jwks_url, _Entry())
        if distrust_before > entry.distrusted_before:
            # Another API process forced a refresh: once per mark, whatever the refetch floor.
            self._distrust(entry, distrust_before)
        stale = time.monotonic() - entry.fetched_at > self.ttl
        if kid in entry.keys and not stale:
            return entry.keys[kid]
        async with entry.lock:
            # Another request may have refreshed while we waited for the lock.
            since = time.monotonic() - entry.fetched_at
            if (kid not in entry.keys or since > self.ttl) and since >= self.min_refetch:
                await self._refresh(jwks_url, entry)
        return entry.keys.get(kid)

    def distrust(self, jwks_url: str, mark: float) -> None:
        """Drop the keys held for this URL: the next token's kid is looked up in a fresh fetch,
        and until one succeeds no key of this JWKS is trusted."""
        self._distrust(self._entries.setdefault(jwks_url, _Entry()), mark)

    @staticmethod
    def _distrust(entry: _Entry, mark: float) -> None:
        entry.keys = {}
        entry.fetched_at = float("-inf")  # the refetch floor does not delay the fresh fetch
        entry.distrusted_before = max(entry.distrusted_before, mark)
        entry.generation += 1

    async def _refresh(self, jwks_url: str, entry: _Entry) -> None:
        entry.fetched_at = time.monotonic()
        generation = entry.generation
        try:
            response = await self.http.get(jwks_url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, UnsafeUrl, ValueError) as exc:
            # Keep the keys we had: an IdP outage must not lock every user out at once.
            log.warning("JWKS fetch failed", extra={"error": type(exc).__name__})
            return
        if entry.generation == generation:  # else distrusted while we fetched: the answer may be
            entry.keys = _parse(document)  # from before the key was removed


def _parse(document: object) -> dict[str, tuple[Key, str]]:
    keys: dict[str, tuple[Key, str]] = {}
    raw_keys = document.get("keys", []) if isinstance(document, dict) else []
    for raw in raw_keys if isinstance(raw_keys, list) else []:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        kid, algorithm = raw.get("kid"), raw.get("alg") or _default_alg(raw)
        # Public keys only, asymmetric algorithms only: an "oct" key would let anyone who
        # can read the JWKS mint tokens.
        if not isinstance(kid, str) or algorithm not in ALLOWED_IDP_ALGORITHMS or "d" in raw:
            continue
        try:
            keys[kid] = (jwk.construct(raw, algorithm), algorithm)
        except (JOSEError, ValueError, TypeError):
            continue
    return keys


def _default_alg(raw: dict[str, object]) -> str | None:
    return {"RSA": "RS256", "EC": "ES256"}.get(str(raw.get("kty")))
