"""The master's side of node RPC: call a node, or many nodes in parallel, by node object.

The typed methods (``await rpc.instance_reboot(node, spec, "hard", 120)``) come from the
call table (rpc/calls.NodeCalls); :meth:`NodeRpc.call` is the generic path by name and
argument dict, for undo records kept in jobs. Both go through :meth:`NodeRpc.invoke`, so
both carry the table's timeout and once-only rule over the same mutual-TLS transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

from cardume import errors, objects
from cardume.rpc.calls import CALLS, Call, NodeCalls
from cardume.rpc.transport import Result, RpcClient
from cardume.rpc.wire import plain

P = ParamSpec("P")
T = TypeVar("T")


class NodeRpc(NodeCalls):
    def __init__(self, client: RpcClient, timeout: float | None = None) -> None:
        self.client = client
        self._timeout = timeout

    def timed(self, seconds: float) -> NodeRpc:
        """The same client, waiting ``seconds`` for each reply instead of the call's
        timeout class (``rpc.timed(10).drbd_status(node)``)."""
        return NodeRpc(self.client, seconds)

    def _spec(self, call: str) -> Call:
        spec = CALLS.get(call)
        if spec is None:
            raise errors.InternalError(f"RPC call {call!r} is not in the call table")
        return spec

    async def invoke(self, node: objects.Node, call: Call, args: dict[str, Any]) -> Any:
        """A typed call: its reply is checked against the declared result."""
        reply = await self._send(node, call, args, self._timeout)
        try:
            return call.decode_result(reply)
        except errors.WrongInput as err:
            raise errors.RpcError(f"node {node.name} sent a malformed reply: {err.message}",
                                  node=node.name) from None

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """One call to one node by name (structures in ``args`` travel as their dicts)."""
        return await self._send(node, self._spec(call), plain(args or {}),
                                timeout if timeout is not None else self._timeout)

    async def _send(self, node: objects.Node, spec: Call, args: dict[str, Any],
                    timeout: float | None) -> Any:
        """One call to one node; errors name the node."""
        if node.offline:
            raise errors.RpcError(f"node {node.name} is marked offline", node=node.name)
        try:
            # A call that changes things carries an idempotency key, so it runs once even
            # if the transport has to resend it.
            return await self.client.call(
                node.primary_ip, node.port, spec.name, args,
                timeout if timeout is not None else spec.seconds, readonly=spec.readonly)
        except errors.RpcError as err:
            if err.message.startswith(f"node {node.name}"):
                raise
            raise errors.RpcError(f"node {node.name}: {err.message}", err.hint,
                                  node=node.name) from None

    async def call_many(self, nodes: Iterable[objects.Node], call: str,
                        args: dict[str, Any] | None = None,
                        timeout: float | None = None) -> dict[str, Result]:
        """The same call by name on many nodes at once; one result per node name."""
        return await each(nodes, lambda node: self.call(node, call, args, timeout))

    async def each(self, nodes: Iterable[objects.Node],
                   method: Callable[Concatenate[objects.Node, P], Awaitable[T]],
                   *args: P.args, **kwargs: P.kwargs) -> dict[str, Result]:
        """A typed call on many nodes at once (``rpc.each(nodes, rpc.node_info)``); one
        result (value or error) per node name."""
        return await each(nodes, lambda node: method(node, *args, **kwargs))


async def each(nodes: Iterable[objects.Node],
               one: Callable[[objects.Node], Awaitable[Any]]) -> dict[str, Result]:
    """``one(node)`` on every node in parallel; a node's error is its Result's error."""
    nodes = list(nodes)

    async def run(node: objects.Node) -> Result:
        try:
            return Result(value=await one(node))
        except errors.CardumeError as err:
            return Result(error=err)

    results = await asyncio.gather(*(run(n) for n in nodes))
    return {n.name: r for n, r in zip(nodes, results, strict=True)}
