"""The master's side of node RPC: call a node, or many nodes in parallel, by node object.

The typed methods (``await rpc.instance_reboot(node, spec, "hard", 120)``), ``timed`` and
``each`` come from the call table (rpc/calls.NodeCalls); :meth:`NodeRpc.call` is the
generic path by name and argument dict, for undo records kept in jobs. Both carry the
table's timeout and once-only rule over the same mutual-TLS transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cardume import errors, objects
from cardume.rpc.calls import CALLS, Call, NodeCalls, each
from cardume.rpc.transport import Result, RpcClient
from cardume.rpc.wire import plain


class NodeRpc(NodeCalls):
    def __init__(self, client: RpcClient) -> None:
        self.client = client
        # node name -> calls made, calls that failed (the metrics page shows them)
        self.calls: dict[str, int] = {}
        self.failures: dict[str, int] = {}

    def _spec(self, call: str) -> Call:
        spec = CALLS.get(call)
        if spec is None:
            raise errors.InternalError(f"RPC call {call!r} is not in the call table")
        return spec

    async def invoke(self, node: objects.Node, call: Call, args: dict[str, Any]) -> Any:
        # the typed methods encoded their arguments already
        return call.checked_result(node, await self._send(node, call, args, self.rpc_timeout))

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """One call to one node by name (structures in ``args`` travel as their dicts)."""
        return await self._send(node, self._spec(call), plain(args or {}),
                                timeout if timeout is not None else self.rpc_timeout)

    async def _send(self, node: objects.Node, spec: Call, args: dict[str, Any],
                    timeout: float | None) -> Any:
        """One call to one node; errors name the node."""
        if node.offline:
            raise errors.RpcError(f"node {node.name} is marked offline", node=node.name)
        self.calls[node.name] = self.calls.get(node.name, 0) + 1
        try:
            # A call that changes things carries an idempotency key, so it runs once even
            # if the transport has to resend it.
            return await self.client.call(
                node.primary_ip, node.port, spec.name, args,
                timeout if timeout is not None else spec.seconds, readonly=spec.readonly)
        except errors.RpcError as err:
            self.failures[node.name] = self.failures.get(node.name, 0) + 1
            if err.message.startswith(f"node {node.name}"):
                raise
            raise errors.RpcError(f"node {node.name}: {err.message}", err.hint,
                                  node=node.name) from None

    async def call_many(self, nodes: Iterable[objects.Node], call: str,
                        args: dict[str, Any] | None = None,
                        timeout: float | None = None) -> dict[str, Result]:
        """The same call by name on many nodes at once; one result per node name."""
        return await each(nodes, lambda node: self.call(node, call, args, timeout))
