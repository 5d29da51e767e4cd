"""The reference adapter's ops for the `wa` binding's areas (``wa_binary_xml``, ``wa_handshake``),
answered by ``reference_impl.wa``. Registered into :data:`vectors.adapters.reference.OPS`."""
from __future__ import annotations

from typing import Any, Callable

from reference_impl.signal.keys import KeyPair, PrivateKey
from reference_impl.wa.binary_xml import Dictionary, WAError, decode, encode
from reference_impl.wa.frame import unpack_payload
from reference_impl.wa.node_json import node_from_json, node_to_json
from reference_impl.wa.noise import (
    ClientAuthenticated, HandshakeComplete, TransportFrame, WAClient, WAServer)

__all__ = ["WA_OPS", "WARejected"]


class WARejected(Exception):
    def __init__(self, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.error = error
        self.extra = extra


_DICTS: dict[str, Dictionary] = {}


def _dictionary(req: dict[str, Any]) -> Dictionary:
    d = req["dictionary"]
    key = d["name"] + "\0" + str(hash((tuple(d["single"]), tuple(tuple(x) for x in d["double"]))))
    if key not in _DICTS:
        _DICTS[key] = Dictionary(tuple(d["single"]), tuple(tuple(x) for x in d["double"]), name=d["name"])
    return _DICTS[key]


def _rejecting(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(req: dict[str, Any]) -> dict[str, Any]:
        try:
            return fn(req)
        except WAError as exc:
            raise WARejected(type(exc).__name__, str(exc)) from exc
    return run


@_rejecting
def op_wa_binary_decode(req: dict[str, Any]) -> dict[str, Any]:
    return {"node": node_to_json(decode(bytes.fromhex(req["data"]), dictionary=_dictionary(req)))}


@_rejecting
def op_wa_binary_encode(req: dict[str, Any]) -> dict[str, Any]:
    return {"data": encode(node_from_json(req["node"]), dictionary=_dictionary(req)).hex()}


@_rejecting
def op_wa_payload_decode(req: dict[str, Any]) -> dict[str, Any]:
    body = unpack_payload(bytes.fromhex(req["data"]))
    return {"node": node_to_json(decode(body, dictionary=_dictionary(req)))}


def op_wa_handshake(req: dict[str, Any]) -> dict[str, Any]:
    msgs = req["messages"]
    initiator = req["role"] == "initiator"
    static = KeyPair.from_private(PrivateKey(bytes.fromhex(req["static_private"])))
    ephemeral = KeyPair.from_private(PrivateKey(bytes.fromhex(req["ephemeral_private"])))
    header = bytes.fromhex(req["header"])
    conn: WAClient | WAServer
    if initiator:
        conn = WAClient(static=static, ephemeral=ephemeral, header=header,
                        payload=bytes.fromhex(msgs[2]["payload"]),
                        root_public=bytes.fromhex(req["root_public"]))
    else:
        conn = WAServer(static=static, ephemeral=ephemeral, cert_chain=bytes.fromhex(msgs[1]["payload"]),
                        dict_version=header[3])
    mine = "c2s" if initiator else "s2c"
    outputs: list[str] = []
    out: dict[str, Any] = {"outputs": outputs}
    for i, m in enumerate(msgs):
        try:
            if m["direction"] == mine:
                if i == 0 and isinstance(conn, WAClient):
                    conn.start()
                elif i >= 3:
                    conn.send(bytes.fromhex(m["payload"]))
                outputs.append(conn.data_to_send().hex())  # messages 1 and 2 were queued by reading
                continue
            events = conn.receive_data(bytes.fromhex(m["wire"]))
        except WAError as exc:
            raise WARejected(type(exc).__name__, f"message {i}: {exc}", index=i) from exc
        got = b""
        for ev in events:
            if isinstance(ev, TransportFrame):
                got = ev.data
            elif isinstance(ev, ClientAuthenticated):
                got = ev.payload_bytes
                out["client_static"] = ev.client_static.hex()
            elif isinstance(ev, HandshakeComplete):
                got = conn.cert_chain or b""  # type: ignore[union-attr]
                out["server_static"] = ev.server_static.hex()
        if not events and i != 0:
            raise WARejected("Incomplete", f"message {i}: no complete frame", index=i)
        outputs.append(got.hex())
    if conn.handshake_hash is not None:
        out["handshake_hash"] = conn.handshake_hash.hex()
    return out


WA_OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "wa_binary_decode": op_wa_binary_decode,
    "wa_binary_encode": op_wa_binary_encode,
    "wa_payload_decode": op_wa_payload_decode,
    "wa_handshake": op_wa_handshake,
}
