"""A loopback TCP relay: `python tcp_proxy.py LISTEN_PORT TARGET_PORT [SECONDS]`.

The fault tests put it between a service and the machine's PostgreSQL and kill it -9 to take
the database away from that service alone, without touching the real server. It stops by
itself after SECONDS (default 900).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def serve(listen: int, target: int, seconds: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(relay(client_r, server_w), relay(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.serve_forever(), timeout=seconds)


if __name__ == "__main__":
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 900.0
    asyncio.run(serve(listen_port, target_port, limit))
