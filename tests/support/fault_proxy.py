"""A fault-injecting TCP proxy for tests: put it between a client and a real server, then
refuse, cut or stall connections on demand, without touching the server itself.

    async with FaultProxy("127.0.0.1", 5432) as proxy:
        dsn = proxy.rewrite_dsn("postgresql://postgres@127.0.0.1:5432/db")
        proxy.refuse()      # new connections are closed at once; existing ones keep working
        proxy.cut()         # every open connection is closed now
        proxy.stall()       # new connections are accepted but no byte is forwarded (timeouts)
        proxy.restore()     # back to forwarding
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit


class ProxyMode(StrEnum):
    FORWARD = "forward"
    REFUSE = "refuse"
    STALL = "stall"


class FaultProxy:
    """Listens on 127.0.0.1 on a free port and forwards to `upstream_host:upstream_port`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.mode = ProxyMode.FORWARD
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def rewrite_dsn(self, dsn: str) -> str:
        """`dsn` with its host and port replaced by the proxy's."""
        parts = urlsplit(dsn)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def refuse(self) -> None:
        """New connections are closed as soon as they are accepted."""
        self.mode = ProxyMode.REFUSE

    def stall(self) -> None:
        """New connections are accepted and held open, with nothing forwarded."""
        self.mode = ProxyMode.STALL

    def restore(self) -> None:
        """Forward new connections again."""
        self.mode = ProxyMode.FORWARD

    def cut(self) -> None:
        """Close every connection open through the proxy now (both sides)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def down(self) -> None:
        """The server seems gone: refuse new connections and cut the open ones."""
        self.refuse()
        self.cut()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self.mode is ProxyMode.REFUSE:
                client_writer.transport.abort()
                return
            self._writers.add(client_writer)
            if self.mode is ProxyMode.STALL:
                await client_reader.read()  # until the client gives up or we are cut
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                client_writer.transport.abort()
                return
            self._writers.add(upstream_writer)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client_reader, upstream_writer), name="proxy-up")
                group.create_task(self._pump(upstream_reader, client_writer), name="proxy-down")
        finally:
            self._writers.discard(client_writer)
            client_writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
