"""The cache of verified tokens changes nothing about which tokens are accepted."""

from __future__ import annotations

import time

from app.core.scopes import Context, ScopeSet
from app.core.tokens import RecentlyVerified, VerifiedToken


def _verified(expires_at: int) -> VerifiedToken:
    return VerifiedToken(
        tenant_id="ten_a",
        kind=Context.client,
        subject="cli_a",
        subject_is_external=False,
        client_id="oac_a",
        token_id="tok_a",
        scopes=ScopeSet(),
        expires_at=expires_at,
    )


def test_a_token_is_known_until_it_expires_with_the_same_leeway_as_verification() -> None:
    cache = RecentlyVerified()
    cache.put("t", _verified(expires_at=1000))
    assert cache.get("t", now=1030.9, leeway=30) is not None
    assert cache.get("t", now=1031.0, leeway=30) is None
    # Gone for good once expired.
    assert cache.get("t", now=0, leeway=30) is None


def test_the_cache_keeps_the_most_recently_used_tokens_only() -> None:
    cache = RecentlyVerified(size=2)
    far = int(time.time()) + 600
    cache.put("a", _verified(far))
    cache.put("b", _verified(far))
    assert cache.get("a", now=time.time(), leeway=0) is not None  # now a is the most recent
    cache.put("c", _verified(far))
    assert cache.get("b", now=time.time(), leeway=0) is None
    assert cache.get("a", now=time.time(), leeway=0) is not None
    assert cache.get("c", now=time.time(), leeway=0) is not None
