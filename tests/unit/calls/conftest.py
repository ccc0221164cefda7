"""A switch on the shared directory (``people.py``), and who has a phone registered."""

from __future__ import annotations

import itertools

import pytest

from hookswitch.calls.ids import LegId, UserId
from hookswitch.calls.switch import Switch
from tests.unit.calls.people import ALEX, DIRECTORY, JANE, JOHN, OTHER


@pytest.fixture
def registered() -> set[UserId]:
    return {JANE.id, JOHN.id, ALEX.id, OTHER.id}


@pytest.fixture
def switch(registered: set[UserId]) -> Switch:
    counter = itertools.count(1)
    return Switch(DIRECTORY, lambda uid: uid in registered, lambda: LegId(f"leg-{next(counter)}"))
