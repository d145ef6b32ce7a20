"""Moving an export's data between nodes, chunk by chunk through the master: a dump file
copied (export_read / export_write), an export script's output streamed into a dump file on
another node, a dump file streamed into an import script on another node. The next chunk
is read while the last one is written; chunks of zeros travel as their length only."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from cardume import objects
from cardume.rpc.calls import NodeCalls
from cardume.rpc.wire import InstanceSpec

CHUNK = 8 * 1024 * 1024  # the node's limit is 16 MiB a call

Reader = Callable[[int], Coroutine[Any, Any, dict[str, Any]]]
Writer = Callable[[int, dict[str, Any]], Coroutine[Any, Any, None]]


def new_work() -> str:
    """A staging directory's name (node/backup_calls.py checks it)."""
    return f".tmp-{uuid.uuid4().hex}"


async def pump(read: Reader, write: Writer) -> int:
    """Every chunk ``read(offset)`` gives to ``write(offset, chunk)``, in order, reading
    the next while the last is written, up to the chunk that says eof; the bytes moved."""
    offset = 0
    reading: asyncio.Task[dict[str, Any]] | None = asyncio.create_task(read(0))
    writing: asyncio.Task[None] | None = None
    try:
        while reading is not None:
            chunk = await reading
            length = int(chunk["length"])
            reading = None
            if length and not chunk["eof"]:
                reading = asyncio.create_task(read(offset + length))
            if writing is not None:
                await writing
            writing = asyncio.create_task(write(offset, chunk))
            offset += length
        if writing is not None:
            await writing
    finally:
        for task in (reading, writing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
    return offset


def file_writer(rpc: NodeCalls, target: objects.Node, work: str, name: str) -> Writer:
    """Chunks into the file ``name`` of the staging directory ``work`` on ``target``."""
    async def write(offset: int, chunk: dict[str, Any]) -> None:
        length = int(chunk["length"])
        if chunk["data"] is not None:
            await rpc.export_write(target, work, name, offset, data=chunk["data"])
        elif length or not offset:  # (an empty file is still made)
            await rpc.export_write(target, work, name, offset, zeros=length)
    return write


async def copy_file(rpc: NodeCalls, source: objects.Node, directory: str,
                    target: objects.Node, work: str, name: str) -> int:
    """A file of an export (or staging) directory on ``source`` into the staging directory
    ``work`` on ``target``; its size."""
    async def read(offset: int) -> dict[str, Any]:
        return await rpc.export_read(source, directory, name, offset, CHUNK)
    return await pump(read, file_writer(rpc, target, work, name))


async def stream_export(rpc: NodeCalls, source: objects.Node, spec: InstanceSpec, index: int,
                        work: str, snapshot: str | None, target: objects.Node,
                        dump: str) -> int:
    """The export script's output for one disk, run on ``source``, into the dump file
    ``dump`` of the staging directory ``work`` on ``target``; its size."""
    async def read(offset: int) -> dict[str, Any]:
        return await rpc.export_stream_read(source, spec, index, work, offset, CHUNK,
                                            snapshot)
    return await pump(read, file_writer(rpc, target, work, dump))


async def stream_import(rpc: NodeCalls, source: objects.Node, directory: str, dump: str,
                        target: objects.Node, spec: InstanceSpec, index: int,
                        work: str) -> int:
    """A dump file of an export on ``source`` into the import script of one disk, run on
    ``target``; the bytes fed."""
    async def read(offset: int) -> dict[str, Any]:
        return await rpc.export_read(source, directory, dump, offset, CHUNK)

    async def write(offset: int, chunk: dict[str, Any]) -> None:
        length, eof = int(chunk["length"]), bool(chunk["eof"])
        if chunk["data"] is not None:
            await rpc.import_stream_write(target, spec, index, work, offset,
                                          data=chunk["data"], eof=eof)
        else:
            await rpc.import_stream_write(target, spec, index, work, offset, zeros=length,
                                          eof=eof)
    return await pump(read, write)
