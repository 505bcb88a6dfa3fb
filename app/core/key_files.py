"""Development keys kept in files (.homework/): written once, whichever process gets there first.

`homework serve --workers N` starts N processes at once, each finding no key file: each must
end up with the same key, or a token one process signs is refused by the next, and a value one
seals cannot be opened by another.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("homework.keys")


def write_once(path: Path, content: str, what: str) -> None:
    """Written owner-only, complete before it appears (a temporary file linked into place), and
    never over a key another process wrote first: the caller reads back whichever won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(content)
    try:
        os.link(temporary, path)
        log.info(f"generated a development {what}", extra={"path": str(path)})
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
