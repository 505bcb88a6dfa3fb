"""All tables, imported here so that `Base.metadata` knows every one of them."""

from app.models.base import Base
from app.models.tenant import Tenant

__all__ = ["Base", "Tenant"]
