"""Crypto-shredding of events: the sensitive fields of each event are sealed under its case's key.

The topics keep every event for ever (views are rebuilt from them), so an erasure cannot delete the
household's issue tags, area, age bands and free-text codes from the log. Instead those fields never
reach the log in clear: the relay seals them under a per-case key (AES-256-GCM) held in the key store
(`shared/case_keys.py`, never on Kafka), and destroying the key makes them unreadable everywhere, in
backups of the topics as well. What the indicators count — tier, patterns, pathways, dates, agency ids,
the municipality — stays in clear, so metrics needs no key and its counts survive an erasure.

On the wire a sealed event has its sensitive fields emptied in `data` (the models accept the empty
values) and two CloudEvents extension attributes: `sealedkey`, the case whose key sealed them, and
`sealed`, base64url(nonce ‖ ciphertext) of the JSON list of [path, value] pairs. The envelope's id,
type and case are the authenticated data, so a sealed part cannot be moved onto another event.
"""

import base64
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.events import EVENT_MODELS, InvalidEvent

Path = list[str | int]

# What is sealed, per event type: dotted paths into `data`, `*` standing for every item of a list.
SEALED_FIELDS: dict[str, tuple[str, ...]] = {
    model.event_type: model.sealed_fields for model in EVENT_MODELS.values() if model.sealed_fields
}
SEALED_TOPICS: dict[str, tuple[str, ...]] = {
    model.topic: model.sealed_fields for model in EVENT_MODELS.values() if model.sealed_fields
}
_NONCE = 12


def concrete_paths(data: Mapping[str, Any], spec: str) -> list[Path]:
    """The paths in `data` that `spec` names (`engaged.*.tags`: the tags of each engaged agency)."""
    found: list[Path] = []

    def walk(node: Any, parts: list[str], at: Path) -> None:
        if not parts:
            found.append(at)
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            if isinstance(node, list):
                for index, item in enumerate(node):
                    walk(item, rest, [*at, index])
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest, [*at, head])

    walk(data, spec.split("."), [])
    return found


def _get(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(node: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _empty(value: Any) -> Any:
    """What stays in clear in place of a sealed value: an empty value of its kind."""
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    if isinstance(value, str):
        return ""
    return None


def _aad(envelope: Mapping[str, Any], case_id: str) -> bytes:
    return f"{envelope['id']}|{envelope['type']}|{case_id}".encode()


def sealed_case(envelope: Mapping[str, Any]) -> str | None:
    """The case whose key an event (a parsed envelope) would be sealed under; None if nothing is sealed."""
    specs = SEALED_FIELDS.get(envelope.get("type", ""))
    data = envelope.get("data")
    if not specs or not isinstance(data, dict) or envelope.get("sealed"):
        return None
    case_id = data.get("case_id")
    if not isinstance(case_id, str):
        return None
    for spec in specs:
        if any(_get(data, path) not in (None, "", [], {}) for path in concrete_paths(data, spec)):
            return case_id
    return None


def seal(envelope: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """Seal the sensitive fields of a parsed envelope in place under `key` and return it.

    With no key (the case was erased before the event left the outbox) the fields are emptied and
    nothing is kept: an erased case's details must not reach the log at all.
    """
    case_id = sealed_case(envelope)
    if case_id is None:
        return envelope
    data = envelope["data"]
    pairs: list[list[Any]] = []
    for spec in SEALED_FIELDS[envelope["type"]]:
        for path in concrete_paths(data, spec):
            value = _get(data, path)
            pairs.append([path, value])
            _set(data, path, _empty(value))
    if key is None:
        return envelope
    nonce = os.urandom(_NONCE)
    plaintext = json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode()
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(envelope, case_id))
    envelope["sealedkey"] = case_id
    envelope["sealed"] = base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii").rstrip("=")
    return envelope


def unseal(envelope: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Put the sealed fields of a parsed envelope back in place with `key`; raises InvalidEvent if the
    sealed part does not open (a wrong key, or it was altered or moved from another event)."""
    blob, case_id = envelope.get("sealed"), envelope.get("sealedkey")
    if not blob or not case_id:
        return envelope
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    try:
        plaintext = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(envelope, case_id))
    except InvalidTag:
        raise InvalidEvent(
            f"the sealed fields of event {envelope.get('id')} do not open with case {case_id}'s key"
        ) from None
    for path, value in json.loads(plaintext):
        _set(envelope["data"], path, value)
    envelope["sealed"] = envelope["sealedkey"] = None
    return envelope


def seal_batch(
    payloads: Sequence[str], topics: Sequence[str], keys_for: Callable[[set[str]], Mapping[str, bytes | None]]
) -> list[str]:
    """Outbox payloads (encoded envelopes, with the topic of each) with their sensitive fields sealed.

    `keys_for` gives the key of each case asked for (None: the case was erased) in one call, so a batch
    asks the key store once. Payloads of topics with nothing to seal are not even parsed.
    """
    parsed: dict[int, dict[str, Any]] = {}
    cases: set[str] = set()
    for index, (payload, topic) in enumerate(zip(payloads, topics, strict=True)):
        if topic in SEALED_TOPICS:
            envelope = json.loads(payload)
            case_id = sealed_case(envelope)
            if case_id is not None:
                parsed[index] = envelope
                cases.add(case_id)
    if not parsed:
        return list(payloads)
    keys = keys_for(cases)
    out = list(payloads)
    for index, envelope in parsed.items():
        sealed = seal(envelope, keys.get(envelope["data"]["case_id"]))
        out[index] = json.dumps(sealed, ensure_ascii=False, separators=(",", ":"))
    return out
