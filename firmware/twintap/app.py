# The application: builds the twin, the Tap dispatcher and the links from the board file and
# the configuration, with hardware objects injected by main.py, then serves them on one loop.
import asyncio
import gc

from . import log
from .links.tcp import TcpServer
from .links.uart import uart_link
from .tap import device
from .tap.dispatcher import Dispatcher


class App:
    def __init__(self, platform, board, config, uart=None, uart_name=None):
        self.platform = platform
        self.board = board
        self.config = config
        self.uart = uart
        self.uart_name = uart_name
        self.dispatcher = Dispatcher()
        device.mount(self.dispatcher, platform, board)
        self.tcp = None

    async def run(self, tcp_host="0.0.0.0", tcp_port=2000):
        tasks = []
        if tcp_port:
            self.tcp = TcpServer(self.dispatcher, tcp_host, tcp_port)
            await self.tcp.start()
        if self.uart is not None:
            tasks.append(asyncio.create_task(uart_link(self.uart, self.dispatcher).serve()))
        gc.collect()
        print("READY tcp=%s uart=%s" % (tcp_port or "-", self.uart_name or "-"))
        log.info("app", "heap free %d" % gc.mem_free())
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            if self.tcp:
                self.tcp.close()
            for t in tasks:
                t.cancel()
