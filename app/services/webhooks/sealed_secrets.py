"""Webhook signing secrets as they are stored: sealed under the data keys, bound to their
endpoint and column (app/core/data_keys.py), so a copy of the database signs nothing.

What is sealed is the secret's 32 random bytes, not its `whsec_` text: sealed, it fits the
column it always had. A value stored before secrets were sealed (`whsec_…`) is still read as
it is until `homework keys rotate-data` seals it (docs/WEBHOOKS.md, "Secrets at rest").
"""

from __future__ import annotations

import base64

from app.core.data_keys import DataKeys, Place, is_sealed
from app.services.webhooks.signing import SECRET_PREFIX, secret_bytes

TABLE = "webhook_endpoints"
COLUMNS = ("secret", "previous_secret")


def place(endpoint_id: str, column: str) -> Place:
    return Place(TABLE, column, (endpoint_id,))


def seal(keys: DataKeys, endpoint_id: str, column: str, secret: str) -> str:
    return keys.seal(secret_bytes(secret), place(endpoint_id, column))


def unseal(keys: DataKeys, endpoint_id: str, column: str, stored: str) -> str:
    if not is_sealed(stored):
        return stored  # legacy plaintext, until rotate-data
    opened = keys.unseal(stored, place(endpoint_id, column))
    return SECRET_PREFIX + base64.b64encode(opened).decode()
