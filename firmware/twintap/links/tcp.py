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
        log.info("tcp", peer + " connected")
        try:
            await StreamLink(peer, reader, writer, self.dispatcher, self.idle_ms).serve()
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
