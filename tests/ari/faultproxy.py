"""A TCP proxy in front of the real Asterisk that can cut connections, for fault tests.

As asyncpg's test suite does for PostgreSQL: the client talks to the proxy, the proxy to the
real server, and a test can reset every connection (Asterisk "crashed" mid-stream) or lose the
response of the next request (the request took effect, the reply never came back).
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.lose_next_responses = 0
        """The next N client connections get their request forwarded but the reply dropped."""

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    def cut_all(self) -> None:
        """Reset every open connection, both sides (like a crash or a cable pulled)."""
        for writer in list(self._writers):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()
        self._writers.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        lose_response = self.lose_next_responses > 0
        if lose_response:
            self.lose_next_responses -= 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            self._tasks.discard(task)
            return
        self._writers.update({client_writer, upstream_writer})
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(client_reader, upstream_writer, lose=False, peer=client_writer))
                group.create_task(self._pipe(upstream_reader, client_writer, lose=lose_response, peer=upstream_writer))
        except* (ConnectionError, OSError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()
                self._writers.discard(writer)
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, lose: bool, peer: asyncio.StreamWriter
    ) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if lose:
                # The server answered; the client never hears it: reset the client side.
                writer.transport.abort()
                peer.transport.abort()
                return
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
