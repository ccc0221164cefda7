"""The provisioning file applied to a real database (SQLite, or PostgreSQL in the PG run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from harness.server import TENANT, provisioning_toml
from hookswitch.config import ConfigError, Provisioning, load_provisioning
from hookswitch.directory.credentials import digest_ha1
from hookswitch.directory.models import ApiTokenRow, TenantRow, UserRow
from hookswitch.directory.provisioning import load_directory, user_id_for
from hookswitch.server import apply_file
from hookswitch.store.db import make_engine, migrate, session_factory


def provisioning(tmp_path: Path, **changes: str) -> Provisioning:
    text = provisioning_toml(http="127.0.0.1:8080", sip="127.0.0.1:5060",
                             database="sqlite+aiosqlite:///x.db", trunk_port=5080,
                             ring_timeout=60)
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / "p.toml"
    path.write_text(text)
    return load_provisioning(path)


async def apply(database: str, prov: Provisioning):  # type: ignore[no-untyped-def]
    engine = make_engine(database)
    await migrate(engine)
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await apply_file(session, prov)
    async with sessions() as session:
        directory = await load_directory(session, str(prov.server.default_tenant))
        users = (await session.scalars(select(UserRow).order_by(UserRow.extension))).all()
        tokens = (await session.scalars(select(ApiTokenRow))).all()
        tenants = (await session.scalars(select(TenantRow))).all()
    await engine.dispose()
    return directory, users, tokens, tenants


async def test_applying_twice_changes_nothing_and_ids_are_stable(
    tmp_path: Path, database: str
) -> None:
    prov = provisioning(tmp_path)
    first = await apply(database, prov)
    second = await apply(database, prov)
    assert [u.id for u in first[1]] == [u.id for u in second[1]]
    assert [(u.extension, u.name) for u in second[1]][:3] == [
        ("200", "John Doe"), ("210", "Jane Doe"), ("220", "Bob Roe")]
    assert len(second[2]) == len(first[2]) == 3  # tokens of 200, 210 and 300
    assert second[1][0].id == user_id_for(TENANT, "200")


async def test_secrets_are_stored_hashed_only(tmp_path: Path, database: str) -> None:
    _, users, tokens, _ = await apply(database, provisioning(tmp_path))
    john = next(u for u in users if u.extension == "200")
    assert john.ha1_md5 == digest_ha1("MD5", "200", TENANT, "pass-200-john")
    stored = {t.token_sha256 for t in tokens}
    assert "tok-john" not in stored and all(len(s) == 64 for s in stored)


async def test_users_removed_from_the_file_are_removed(tmp_path: Path, database: str) -> None:
    await apply(database, provisioning(tmp_path))
    directory, users, _, _ = await apply(
        database, provisioning(tmp_path, **{'extension = "220"': 'extension = "221"'})
    )
    assert [u.extension for u in users if u.tenant_id == TENANT] == ["200", "210", "221"]
    assert "220" not in directory.tenants[TENANT].users  # type: ignore[index]


async def test_directory_resolves_domains_and_numbers(tmp_path: Path, database: str) -> None:
    directory, _, _, _ = await apply(database, provisioning(tmp_path))
    assert directory.tenant_for_domain("127.0.0.1").id == TENANT  # default tenant
    assert directory.tenant_for_domain("OTHER.test").name == "Other"
    assert directory.tenants[TENANT].user_by_number("+3228990210").extension == "210"  # type: ignore[index,union-attr]
    assert directory.trunk_for_source("127.0.0.1", 5080).name == "carrier"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({'extension = "220"': 'extension = "210"'}, "appear more than once"),
        ({'numbers = ["+3228990200"]': 'numbers = ["0032"]'}, "E.164"),
        ({"ring_timeout = 60": "ring_timeout = -1"}, "ring_timeout"),
        ({'name = "Bob Roe"': 'name = "Bob Roe"\ncolour = "blue"'}, "colour"),
    ],
)
def test_a_bad_file_is_refused_with_where_and_why(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        provisioning(tmp_path, **change)
