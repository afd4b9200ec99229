# ESP32 boards (ESP32, -S3, -C3): machine.UART from the board file, MAC as the chip id.
import gc

import machine


class Platform:
    name = "esp32"

    def unique_id(self):
        return machine.unique_id()

    def mem_free(self):
        return gc.mem_free()

    def open_uart(self, board_uart, path=None):
        if not board_uart or board_uart.get("id") is None:
            return None
        return machine.UART(
            board_uart["id"],
            baudrate=board_uart.get("baud", 115200),
            tx=board_uart.get("tx"),
            rx=board_uart.get("rx"),
            timeout=0,
            rxbuf=512,
        )

    def reset(self):
        machine.reset()
