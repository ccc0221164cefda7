"""Several nodes on one PostgreSQL database and one Redis (docs/CLUSTER.md).

Redis holds what must be shared fast and may be lost: which nodes are alive and where
(``membership.py``), and a bus of notices between them (``bus.py``). PostgreSQL holds
what must not be lost. Every key of a cluster starts with its prefix, made from the
database the nodes share: two clusters on one Redis (the tests run several) never meet.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url


def key_prefix(database: str) -> str:
    """``hookswitch:<database name>:``, the namespace of one cluster in Redis."""
    name = make_url(database).database or "default"
    return f"hookswitch:{name}:"
