"""The master's side of node RPC: call a node, or many nodes in parallel, by node object."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from cardume import errors, objects
from cardume.rpc.calls import CALLS, Call
from cardume.rpc.transport import Result, RpcClient


class NodeRpc:
    def __init__(self, client: RpcClient) -> None:
        self.client = client

    def _spec(self, call: str) -> Call:
        spec = CALLS.get(call)
        if spec is None:
            raise errors.InternalError(f"RPC call {call!r} is not in the call table")
        return spec

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """One call to one node; errors name the node."""
        spec = self._spec(call)
        if node.offline:
            raise errors.RpcError(f"node {node.name} is marked offline", node=node.name)
        try:
            # A call that changes things carries an idempotency key, so it runs once even
            # if the transport has to resend it.
            return await self.client.call(
                node.primary_ip, node.port, call, args or {},
                timeout if timeout is not None else spec.seconds, readonly=spec.readonly)
        except errors.RpcError as err:
            if err.message.startswith(f"node {node.name}"):
                raise
            raise errors.RpcError(f"node {node.name}: {err.message}", err.hint,
                                  node=node.name) from None

    async def call_many(self, nodes: Iterable[objects.Node], call: str,
                        args: dict[str, Any] | None = None,
                        timeout: float | None = None) -> dict[str, Result]:
        """The same call on many nodes at once; one result (value or error) per node name."""
        nodes = list(nodes)

        async def one(node: objects.Node) -> Result:
            try:
                return Result(value=await self.call(node, call, args, timeout))
            except errors.CardumeError as err:
                return Result(error=err)

        results = await asyncio.gather(*(one(n) for n in nodes))
        return {n.name: r for n, r in zip(nodes, results, strict=True)}
