"""A node behind the cluster's SIP edge (deploy/kamailio/kamailio.cfg): where a request
really came from, and how a device registered through the edge is reached (RFC 3327 Path).

Every datagram from the edge comes from the edge's own address, so the tarpit (keyed by
source address) and trunk recognition would see one sender. The edge says where each
request came from in ``X-Hookswitch-Source: ip:port`` (after removing any copy a phone
sent); that header is believed only on a datagram from the configured edge address.
"""

from __future__ import annotations

from typing import Any

from sippy.SipRoute import SipRoute

from hookswitch.sip.addresses import valid_host, valid_port

SOURCE_HEADER = "x-hookswitch-source"
DEFAULT_SIP_PORT = 5060


def from_edge(req: Any, edge: tuple[str, int] | None) -> bool:
    """The datagram came from the configured edge (never true on a single server)."""
    host, port = req.getSource()
    return edge is not None and (str(host), int(port)) == edge


def source_of(req: Any, edge: tuple[str, int] | None) -> tuple[str, int]:
    """The address ``req`` came from: the datagram's, or the phone's the edge vouches for."""
    host, port = req.getSource()
    source = (str(host), int(port))
    if not from_edge(req, edge):
        return source
    vouched = _vouched(req)
    return vouched if vouched is not None else source


def _vouched(req: Any) -> tuple[str, int] | None:
    if req.countHFs(SOURCE_HEADER) == 0:
        return None
    # The edge appends its header last (and removed any earlier one): read the last.
    value = str(req.getHFBodys(SOURCE_HEADER)[-1]).strip()
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not valid_host(host) or not valid_port(int(port)):
        return None
    return (host, int(port))


def path_of(req: Any, edge: tuple[str, int] | None) -> tuple[str, ...]:
    """The REGISTER's Path values, in order (each header line may hold several), when it
    came through the edge. From anyone else a Path is ignored: requests to a device go
    where its REGISTER came from, so a phone cannot aim the node's INVITEs at a third
    party by naming it in a Path."""
    if not from_edge(req, edge) or req.countHFs("path") == 0:
        return ()
    return tuple(str(path) for path in req.getHFBodys("path"))


def first_hop(path: tuple[str, ...]) -> tuple[str, int]:
    """Where a request routed over ``path`` is sent: its first URI (loose routing)."""
    route = SipRoute(body=path[0])
    route.parse()
    url = route.getUrl()
    return (str(url.host), int(url.port) if url.port is not None else DEFAULT_SIP_PORT)


def routes(path: tuple[str, ...]) -> list[Any]:
    """``path`` as sippy Route headers for a UA's route set."""
    parsed = []
    for value in path:
        route = SipRoute(body=value)
        route.parse()
        parsed.append(route)
    return parsed
