"""A small blocking layer over paho-mqtt 2.x for the host: MQTT 3.1.1, clean session, TLS that
verifies the broker against a given CA and host name.

``Connection.connect()`` returns once the broker accepted the session (or raises
``TwintapError`` saying why: unreachable, TLS failure, refused credentials), ``subscribe()``
once the SUBACK is in, ``publish()`` (QoS 1) once the PUBACK is in. Messages go to
``on_message(topic, payload)`` on paho's network thread. After a lost connection paho
reconnects by itself and the subscriptions are made again. Passwords never appear in errors.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from twintap import TwintapError

Handler = Callable[[str, bytes], None]


@dataclass(frozen=True)
class BrokerURL:
    """``mqtts://host:port`` (TLS, default port 8883) or ``mqtt://host:port`` (1883)."""

    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        """True for ``mqtts``."""
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_url(url: str) -> BrokerURL:
    """Parse a broker URL; ``ssl://`` (the Rapidomize document's spelling) means ``mqtts://``."""
    parts = urlsplit(url if "://" in url else "mqtts://" + url)
    scheme = {"ssl": "mqtts", "tls": "mqtts", "tcp": "mqtt"}.get(parts.scheme, parts.scheme)
    try:
        port = parts.port
    except ValueError as e:
        raise TwintapError(f"bad broker URL {url!r}: {e}") from None
    if scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise TwintapError(f"bad broker URL {url!r}: expected mqtts://HOST[:PORT]")
    return BrokerURL(scheme, parts.hostname, port or (8883 if scheme == "mqtts" else 1883))


@dataclass
class Credentials:
    """Who connects: user name, password (never shown by repr) and the CA to verify with."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None


def tls_context(ca: Path | str | None) -> ssl.SSLContext:
    """A client context that verifies the server certificate and host name against ``ca``."""
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as e:
        raise TwintapError(f"cannot load the CA {ca}: {e}") from None


class Connection:
    """One MQTT 3.1.1 session with a broker. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str | BrokerURL,
        creds: Credentials | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
        on_message: Handler | None = None,
        log: Callable[[str], None] | None = None,
        clean_session: bool = True,
    ) -> None:
        self.url = url if isinstance(url, BrokerURL) else parse_url(url)
        self.creds = creds or Credentials()
        self.client_id = client_id or "twintap-" + secrets.token_hex(4)
        self.keepalive = keepalive
        self.on_message = on_message
        self.log = log or (lambda line: None)
        self.connected = threading.Event()
        self._answered = threading.Event()
        self._refusal: str | None = None
        self._subs: dict[str, int] = {}
        self._subacks: dict[int, list[int]] = {}
        self._suback_cv = threading.Condition()
        self._closing = False
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if self.url.tls:
            c.tls_set_context(tls_context(self.creds.ca))
        if self.creds.username is not None:
            c.username_pw_set(self.creds.username, self.creds.password)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        self.client = c

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        if reason_code.is_failure:
            self._refusal = str(reason_code)
            self._answered.set()
            return
        first = not self._answered.is_set()
        self.connected.set()
        self._answered.set()
        if not first and self._subs:
            self.log(f"[I][mqtt] reconnected to {self.url}; subscribing again")
            client.subscribe([(t, q) for t, q in self._subs.items()])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        if self.connected.is_set() and not self._closing:
            self.log(f"[W][mqtt] connection to {self.url} lost: {reason_code}")
        self.connected.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ARG002
        with self._suback_cv:
            self._subacks[mid] = [rc.value for rc in reason_codes]
            self._suback_cv.notify_all()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ARG002
        handler = self.on_message
        if handler is None:
            return
        try:
            handler(msg.topic, msg.payload)
        except Exception as e:  # a bad message must not kill the network thread
            self.log(f"[E][mqtt] handler failed on {msg.topic}: {e!r}")

    # -- API -----------------------------------------------------------------------------
    def connect(self, timeout: float = 10.0) -> Connection:
        """Connect (TLS handshake included) and wait for the CONNACK; raise if refused."""
        try:
            self.client.connect(self.url.host, self.url.port, self.keepalive)
        except ssl.SSLCertVerificationError as e:
            raise TwintapError(
                f"TLS with {self.url} failed: certificate verify failed: {e.verify_message}"
            ) from None
        except ssl.SSLError as e:
            raise TwintapError(f"TLS with {self.url} failed: {e.reason or e}") from None
        except ssl.CertificateError as e:
            raise TwintapError(f"TLS with {self.url} failed: {e}") from None
        except OSError as e:
            raise TwintapError(f"cannot reach the broker {self.url}: {e.strerror or e}") from None
        self.client.loop_start()
        if not self._answered.wait(timeout):
            self.close()
            raise TwintapError(f"no CONNACK from {self.url} within {timeout:g} s")
        if self._refusal is not None:
            self.close()
            who = self.creds.username or "(anonymous)"
            raise TwintapError(f"broker {self.url} refused {who}: {self._refusal}")
        return self

    def subscribe(self, topics: Sequence[str], qos: int = 1, timeout: float = 10.0) -> list[int]:
        """Subscribe and wait for the SUBACK; returns the granted QoS per topic (0x80: refused).

        Mosquitto grants subscriptions its ACL forbids and then delivers nothing on them.
        """
        for t in topics:
            self._subs[t] = qos
        result, mid = self.client.subscribe([(t, qos) for t in topics])
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise TwintapError(f"subscribe failed: {mqtt.error_string(result)}")
        with self._suback_cv:
            if not self._suback_cv.wait_for(lambda: mid in self._subacks, timeout):
                raise TwintapError(f"no SUBACK from {self.url} within {timeout:g} s")
            return self._subacks.pop(mid)

    def publish(
        self, topic: str, payload: bytes | str | dict | list, qos: int = 1,
        timeout: float = 10.0, wait: bool = True,
    ) -> None:
        """Publish (objects as JSON); with QoS 1 and ``wait`` wait for the PUBACK.

        From a message handler (paho's network thread) pass ``wait=False``.
        """
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos)
        if qos == 0 or not wait:
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise TwintapError(f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
            return
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise TwintapError(f"publish on {topic} failed: {e}") from None
        if not info.is_published():
            raise TwintapError(f"no PUBACK for {topic} within {timeout:g} s")

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self._closing = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self.connected.clear()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
