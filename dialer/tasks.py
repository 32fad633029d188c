"""Background tasks with an owner: each is named (it shows in logs and in asyncio's task dumps),
a failure is logged when it happens (not when the task is garbage-collected, or never), and its
owner stops it by cancelling it and waiting until it has ended, so nothing it holds (a
connection, an HTTP request, a file) is closed under it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")


def start_task(coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """`coroutine` as a named task whose failure (an exception other than its cancellation) is
    logged as `task_failed` with the traceback when it happens. The caller keeps the task and
    stops it with `stop_tasks`."""
    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("task_failed", task=task.get_name(), error=f"{type(error).__name__}: {error}", exc_info=error)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended (a failure was logged already)."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


@contextlib.asynccontextmanager
async def owned_task(coroutine: Coroutine[Any, Any, T], name: str) -> AsyncIterator[asyncio.Task[T]]:
    """`start_task` for the body of an `async with`: on leaving it (normally, by an error or by
    a cancellation of the owner), the task is stopped with `stop_tasks`, so it never outlives
    its owner; a cancellation of the owner itself goes on."""
    task = start_task(coroutine, name)
    try:
        yield task
    finally:
        await stop_tasks([task])
