"""Joining a node without root SSH: a one-time token that pins the node's certificate.

A node daemon that belongs to no cluster makes a key, a self-signed certificate and a
random secret, and shows a join token: ``cardume-join:v1:<certificate sha256>:<secret>``
(``cardume node join-token`` prints it on the node). The admin passes the token to
``gnt-node add --join-token``; the master then

1. connects to the node and checks, on that same TLS connection, that the node presents
   exactly the certificate named in the token (nobody in between can pose as the node);
2. issues a certificate signed by the cluster CA for the node's *existing* public key (so
   private keys never travel), and sends it, the CA certificate and the cluster summary
   with the secret (which proves to the node that the admin, not a stranger, asked);
3. the node installs them, forgets the secret and from then on accepts only clients with
   a certificate from the cluster CA.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from typing import Any

from cardume import errors, tls

TOKEN_PREFIX = "cardume-join:v1:"
_TOKEN_RE = re.compile(r"^cardume-join:v1:([0-9a-f]{64}):([A-Za-z0-9_-]{20,128})$")
_SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{20}")


def make_token(cert_pem: bytes, secret: str) -> str:
    return f"{TOKEN_PREFIX}{tls.fingerprint(cert_pem).removeprefix('sha256:')}:{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """(fingerprint "sha256:...", secret) of a join token; bad tokens are named."""
    match = _TOKEN_RE.match(token.strip())
    if not match:
        # A mistyped token may still hold most of the node's secret: it is named only when
        # nothing in it could be one.
        shown = (f"'{token}'" if len(token) <= 64 and not _SECRET_LIKE.search(token)
                 else f"of {len(token)} characters")
        raise errors.WrongInput(
            f"invalid join token {shown}: expected cardume-join:v1:<sha256 hex>:<secret>",
            "print the token on the node with 'cardume node join-token'")
    return "sha256:" + match.group(1), match.group(2)


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call: str,
                   args: dict[str, Any]) -> Any:
    body = json.dumps(args, separators=(",", ":")).encode()
    writer.write(f"POST /{call} HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    reply = json.loads(await reader.readexactly(length))
    if not reply.get("ok"):
        raise errors.from_dict(reply.get("error") or {})
    return reply.get("result")


async def join_node(host: str, port: int, token: tuple[str, str], *, node_name: str,
                    ca_cert: str, ca_key: str, cluster_name: str, ssconf: dict[str, Any],
                    tls_files: tuple[str, str], timeout: float) -> str:
    """Join the node daemon at host:port to the cluster; returns its new fingerprint."""
    expected, secret = token
    context = tls.pinned_client_context(*tls_files)
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            try:
                ssl_object = writer.get_extra_info("ssl_object")
                presented = tls.peer_fingerprint(ssl_object)
                if presented != expected:
                    raise errors.WrongInput(
                        f"the daemon at {where} presents certificate {presented}, not the "
                        f"one in the join token ({expected}); refusing to join it",
                        "check the token was printed on this node")
                peer_der = ssl_object.getpeercert(binary_form=True)
                peer_pem = ssl.DER_cert_to_PEM_cert(peer_der).encode()
                node_cert = tls.sign_node_cert(ca_cert.encode(), ca_key.encode(), peer_pem,
                                               node_name, [host])
                await _request(reader, writer, "join", {
                    "secret": secret, "cluster_name": cluster_name, "node_name": node_name,
                    "ca_cert": ca_cert, "node_cert": node_cert.decode(), "ssconf": ssconf})
            finally:
                writer.close()
    except TimeoutError:
        raise errors.RpcError(f"node daemon at {where} did not answer within {timeout:.0f}s",
                              node=node_name) from None
    except (ConnectionError, OSError) as err:
        raise errors.RpcError(f"can't reach the node daemon at {where}: {err}",
                              "is cardume-noded running on the node?", node=node_name) from None
    return tls.fingerprint(node_cert)
