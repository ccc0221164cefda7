"""``hookswitch token create`` / ``revoke`` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.server import TENANT
from hookswitch.directory.tokens import principal_for
from hookswitch.store.db import make_engine, session_factory
from tests.integration.test_provisioning import apply, provisioning


def hookswitch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hookswitch", *args], capture_output=True,
                          text=True, timeout=60)


async def lookup(database: str, token: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database)
    try:
        async with session_factory(engine)() as session:
            return await principal_for(session, token)
    finally:
        await engine.dispose()


async def test_create_prints_a_working_token_and_revoke_disables_it(
    tmp_path: Path, database: str
) -> None:
    await apply(database, provisioning(tmp_path))
    created = hookswitch("token", "create", "--tenant", TENANT, "--extension", "210",
                         "--expires-in", "30d", "--db", database)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    principal = await lookup(database, token)
    assert principal is not None and principal.extension == "210"
    revoked = hookswitch("token", "revoke", token, "--db", database)
    assert revoked.returncode == 0, revoked.stderr
    assert await lookup(database, token) is None
    assert hookswitch("token", "revoke", token, "--db", database).returncode == 1


def test_create_refuses_unknown_extensions_and_bad_durations(database: str) -> None:
    unknown = hookswitch("token", "create", "--tenant", TENANT, "--extension", "999",
                         "--db", database)
    assert unknown.returncode == 2 and "no extension 999" in unknown.stderr
    bad = hookswitch("token", "create", "--tenant", TENANT, "--extension", "210",
                     "--expires-in", "soon", "--db", database)
    assert bad.returncode == 2 and "duration" in bad.stderr
