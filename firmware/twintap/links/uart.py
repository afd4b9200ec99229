# Tap over UART: raw APDUs on the byte stream, resynchronised by the inter-byte timeout.
# `port` is any stream the platform opened (machine.UART on the ESP32, a pty on unix).
import asyncio

from .stream import StreamLink


def uart_link(port, dispatcher, idle_ms=50):
    s = asyncio.StreamReader(port)
    return StreamLink("uart", s, s, dispatcher, idle_ms, "uart")
