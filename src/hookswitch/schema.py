"""Every table of every room, gathered: what the migrations must make (the migration tests
compare the two). It sits with the composition, above the rooms it imports."""

from hookswitch.directory import models as _directory  # noqa: F401
from hookswitch.events import models as _events  # noqa: F401
from hookswitch.integrations import models as _integrations  # noqa: F401
from hookswitch.store import dialogs as _dialogs  # noqa: F401
from hookswitch.store import idempotency as _idempotency  # noqa: F401
from hookswitch.store import legs as _legs  # noqa: F401
from hookswitch.store import registrations as _registrations  # noqa: F401
from hookswitch.store.base import Base

metadata = Base.metadata
