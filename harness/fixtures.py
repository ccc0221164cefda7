"""pytest fixtures for real phones and the example integrator. Import them into a
conftest.py::

    from harness.fixtures import make_baresip, make_integrator, make_sipp  # noqa: F401

Every process a fixture starts is stopped by a finalizer, even when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .baresip import Baresip
from .integrator import IntegratorProcess
from .sipp import SippProcess

MakeBaresip = Callable[..., Baresip]
MakeSipp = Callable[..., SippProcess]
MakeIntegrator = Callable[..., IntegratorProcess]


@pytest.fixture
def make_baresip(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBaresip:
    """``make_baresip(user, password, registrar, **Baresip_kwargs) -> Baresip`` (started)."""

    def make(user: str, password: str, registrar: tuple[str, int], **kwargs: Any) -> Baresip:
        phone = Baresip(tmp_path, user, password, registrar, **kwargs)
        request.addfinalizer(phone.stop)
        phone.start()
        return phone

    return make


@pytest.fixture
def make_sipp(request: pytest.FixtureRequest, tmp_path: Path) -> MakeSipp:
    """``make_sipp(scenario, local_port=..., remote=..., **SippProcess_kwargs)`` (started);
    ``workdir`` defaults to the test's ``tmp_path``."""

    def make(scenario: str, **kwargs: Any) -> SippProcess:
        kwargs.setdefault("workdir", tmp_path)
        proc = SippProcess(scenario, start=False, **kwargs)
        request.addfinalizer(proc.stop)
        proc.start()
        return proc

    return make


@pytest.fixture
def make_integrator(request: pytest.FixtureRequest, tmp_path: Path) -> MakeIntegrator:
    """``make_integrator(hookswitch_url, **IntegratorProcess_kwargs)``: the example
    integrator as a process (started, ready)."""

    def make(hookswitch_url: str, **kwargs: Any) -> IntegratorProcess:
        integrator = IntegratorProcess(tmp_path, hookswitch_url, **kwargs)
        request.addfinalizer(integrator.stop)
        integrator.start()
        return integrator

    return make
