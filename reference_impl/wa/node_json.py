"""A language-neutral JSON form of :class:`~.binary_xml.Node` trees (vectors, evidence, adapters).

``{"tag": str, "attrs": [[key, value], ...], "content": content}`` where a value is a JSON string
or a JID object ``{"user", "server", "device"?, "integrator"?}``, and content is ``null``,
``{"bytes": hex}``, ``{"str": s}``, ``{"jid": JID object}`` or a list of nodes. Typed JIDs keep
the difference between a string that looks like an address and an address on the wire. Attributes
are a list of pairs, not an object: their order is part of the encoding, and JSON objects have none
(our files are written with sorted keys).
"""

from __future__ import annotations

from typing import Any

from reference_impl.wa.binary_xml import JID, Node, Value

__all__ = ["node_to_json", "node_from_json", "jid_to_json", "jid_from_json"]


def jid_to_json(j: JID) -> dict[str, Any]:
    out: dict[str, Any] = {"user": j.user, "server": j.server}
    if j.device is not None:
        out["device"] = j.device
    if j.integrator is not None:
        out["integrator"] = j.integrator
    return out


def jid_from_json(d: Any) -> JID:
    if not isinstance(d, dict) or set(d) - {"user", "server", "device", "integrator"} \
            or not isinstance(d.get("user"), str) or not isinstance(d.get("server"), str):
        raise ValueError(f"not a JID object: {d!r}")
    for k in ("device", "integrator"):
        if k in d and not isinstance(d[k], int):
            raise ValueError(f"JID {k} must be an integer")
    return JID(d["user"], d["server"], d.get("device"), d.get("integrator"))


def _value_to_json(v: Value) -> Any:
    return jid_to_json(v) if isinstance(v, JID) else v


def node_to_json(n: Node) -> dict[str, Any]:
    c = n.content
    content: Any
    if c is None:
        content = None
    elif isinstance(c, list):
        content = [node_to_json(k) for k in c]
    elif isinstance(c, bytes):
        content = {"bytes": c.hex()}
    elif isinstance(c, JID):
        content = {"jid": jid_to_json(c)}
    else:
        content = {"str": c}
    return {"tag": n.tag, "attrs": [[k, _value_to_json(v)] for k, v in n.attrs.items()],
            "content": content}


def node_from_json(d: Any) -> Node:
    if not isinstance(d, dict) or not isinstance(d.get("tag"), str):
        raise ValueError(f"not a node object: {d!r}")
    attrs: dict[str, Value] = {}
    pairs = d.get("attrs") or []
    if not isinstance(pairs, list):
        raise ValueError("attrs must be a list of [key, value] pairs")
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"bad attribute pair {pair!r}")
        k, v = pair
        if k in attrs:
            raise ValueError(f"duplicate attribute {k!r}")
        attrs[k] = v if isinstance(v, str) else jid_from_json(v)
    c = d.get("content")
    content: Any
    if c is None:
        content = None
    elif isinstance(c, list):
        content = [node_from_json(k) for k in c]
    elif isinstance(c, dict) and set(c) == {"bytes"}:
        content = bytes.fromhex(c["bytes"])
    elif isinstance(c, dict) and set(c) == {"str"} and isinstance(c["str"], str):
        content = c["str"]
    elif isinstance(c, dict) and set(c) == {"jid"}:
        content = jid_from_json(c["jid"])
    else:
        raise ValueError(f"bad node content: {c!r}")
    return Node(d["tag"], attrs, content)
