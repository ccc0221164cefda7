"""Every table of every capability, gathered for Alembic."""

from hookswitch.directory import models as _directory  # noqa: F401
from hookswitch.events import models as _events  # noqa: F401
from hookswitch.store import idempotency as _idempotency  # noqa: F401
from hookswitch.store import legs as _legs  # noqa: F401
from hookswitch.store.base import Base

metadata = Base.metadata
