"""Rapidomize MQTT topics, host side (spec rapidomize.md, "Topics").

The board builds its topics in ``firmware/twintap/rpz/topics.py``; the host may only share
``twintap.proto`` with the firmware, so this module builds the same layout from the spec table,
for the bench broker's ACL and for the bench platform. ``{cid}`` is the client id (``_`` when
none is configured); the MQTT client id of an instance is ``{appId}/cid/{cid}``.

| direction (device) | topic |
|---|---|
| publish   | ``/api/v1/mo/{appId}/cid/{cid}`` (register, read declared properties) |
| publish   | ``/api/v1/mo/{appId}/cid/{cid}/event`` |
| publish   | ``/api/v1/mo/{appId}/cid/{cid}/ack/{refId}`` |
| publish   | ``/api/v1/icapp/{icappId}/cid/{cid}/event`` (with an ICApp) |
| subscribe | ``$/api/v1/mo/{appId}/cid/{cid}`` (SSRs and answers to the device's requests) |
| subscribe | ``$/api/v1/mo/{appId}`` (SSRs for every instance: write, exec) |
| subscribe | ``$/api/v1/icapp/{icappId}/cid/{cid}`` (with an ICApp) |
"""

from __future__ import annotations

from dataclasses import dataclass

from twintap import TwintapError

MO = "/api/v1/mo/"
ICAPP = "/api/v1/icapp/"
DEFAULT_CID = "_"

#: what the platform subscribes to: every instance's requests, events and acks
PLATFORM_SUBSCRIPTIONS = (
    MO + "+/cid/+",
    MO + "+/cid/+/event",
    MO + "+/cid/+/ack/+",
    ICAPP + "+/cid/+/event",
)

_FORBIDDEN = set("/+#\0") | {" ", "\t", "\r", "\n"}


def check_id(kind: str, value: str | None) -> str:
    """``value`` if it can be one topic level (non-empty, no ``/ + #``, no blanks)."""
    if not value or any(c in _FORBIDDEN for c in value):
        raise TwintapError(f"bad {kind} {value!r}: non-empty, without '/', '+', '#' or blanks")
    return value


def client_id(app: str, cid: str = DEFAULT_CID) -> str:
    """The MQTT client id of an instance: ``{appId}/cid/{cid}``."""
    return f"{check_id('app id', app)}/cid/{check_id('client id', cid or DEFAULT_CID)}"


def register(app: str, cid: str = DEFAULT_CID) -> str:
    """Where the device registers (PATCH) and reads its declared properties (READ)."""
    return MO + client_id(app, cid)


def event(app: str, cid: str = DEFAULT_CID) -> str:
    """The device's event topic."""
    return register(app, cid) + "/event"


def ack(app: str, cid: str, ref: object) -> str:
    """The device's ack topic for the SSR whose ``ref`` (else ``mid``) is ``ref``."""
    return register(app, cid) + "/ack/" + str(ref)


def ssr(app: str, cid: str = DEFAULT_CID) -> str:
    """SSRs for one instance, and the platform's answers to that instance's requests."""
    return "$" + register(app, cid)


def ssr_all(app: str) -> str:
    """SSRs for every instance of an app (write and exec only)."""
    return "$" + MO + check_id("app id", app)


def icapp_event(icapp: str, cid: str = DEFAULT_CID) -> str:
    """Events that also trigger the ICApp ``icapp``."""
    return f"{ICAPP}{check_id('icapp id', icapp)}/cid/{check_id('client id', cid)}/event"


def icapp_ssr(icapp: str, cid: str = DEFAULT_CID) -> str:
    """ICApp requests for one instance."""
    return f"${ICAPP}{check_id('icapp id', icapp)}/cid/{check_id('client id', cid)}"


def device_topics(
    app: str, cid: str = DEFAULT_CID, icapp: str | None = None
) -> tuple[list[str], list[str]]:
    """(publish, subscribe) topic filters of one instance: exactly what its account may use."""
    pub = [register(app, cid), event(app, cid), register(app, cid) + "/ack/+"]
    sub = [ssr(app, cid), ssr_all(app)]
    if icapp:
        pub.append(icapp_event(icapp, cid))
        sub.append(icapp_ssr(icapp, cid))
    return pub, sub


@dataclass(frozen=True)
class Topic:
    """A parsed device-side topic: ``kind`` is register, event, ack or icapp_event."""

    kind: str
    app: str | None
    cid: str
    icapp: str | None = None
    ref: str | None = None


def parse(topic: str) -> Topic | None:
    """Parse a topic the device publishes on; None for anything else."""
    if topic.startswith(MO):
        parts = topic[len(MO):].split("/")
        if len(parts) < 3 or parts[1] != "cid" or not parts[0] or not parts[2]:
            return None
        app, cid, rest = parts[0], parts[2], parts[3:]
        if not rest:
            return Topic("register", app, cid)
        if rest == ["event"]:
            return Topic("event", app, cid)
        if len(rest) == 2 and rest[0] == "ack" and rest[1]:
            return Topic("ack", app, cid, ref=rest[1])
        return None
    if topic.startswith(ICAPP):
        parts = topic[len(ICAPP):].split("/")
        if len(parts) == 4 and parts[1] == "cid" and parts[3] == "event" and parts[0] and parts[2]:
            return Topic("icapp_event", None, parts[2], icapp=parts[0])
    return None
