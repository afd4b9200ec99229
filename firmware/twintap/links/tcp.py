# Tap over TCP (Wi-Fi, port 2000): raw APDUs, one request per write, one response per write.
# Every client gets its own StreamLink and session.
import asyncio

from .. import log
from .stream import StreamLink


class TcpServer:
    def __init__(self, dispatcher, host="0.0.0.0", port=2000, idle_ms=500):
        self.dispatcher = dispatcher
        self.host = host
        self.port = port
        self.idle_ms = idle_ms
        self.server = None
        self.clients = 0

    async def start(self):
        self.server = await asyncio.start_server(self._client, self.host, self.port)
        log.info("tcp", "Tap server on %s:%d" % (self.host, self.port))

    async def _client(self, reader, writer):
        self.clients += 1
        peer = "tcp#%d" % self.clients
        # the client's host from asyncio's "peername": ("ip", port) on the ESP32, a raw
        # sockaddr on the unix port (family u16 little-endian, port, then the IPv4 or IPv6
        # address)
        host = "?"
        try:
            addr = writer.get_extra_info("peername")
            if isinstance(addr, (tuple, list)) and addr:
                host = str(addr[0])
            elif isinstance(addr, (bytes, bytearray)) and len(addr) >= 8:
                family = addr[0] | addr[1] << 8
                if family == 2:
                    host = "%d.%d.%d.%d" % tuple(addr[4:8])
                elif family == 10 and len(addr) >= 24:
                    host = bytes(addr[8:24]).hex()
        except (AttributeError, KeyError, TypeError):
            pass
        log.info("tcp", peer + " connected from " + host)
        try:
            link = StreamLink(peer, reader, writer, self.dispatcher, self.idle_ms, "tcp:" + host)
            await link.serve()
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except OSError:
                pass
            log.info("tcp", peer + " disconnected")

    def close(self):
        if self.server:
            self.server.close()
