"""The HTTP listening socket: its connections send without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

from harness.ports import free_tcp_port
from hookswitch.server import bind_http


async def test_accepted_http_connections_have_nodelay_so_answers_are_not_held_40_ms() -> None:
    # Without TCP_NODELAY a response written in two parts (headers, body) waited for the
    # client's delayed ACK: every API answer took 40 ms more.
    listening = bind_http(f"127.0.0.1:{free_tcp_port()}")
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connection, sock=listening)
    try:
        host, port = listening.getsockname()
        _, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
