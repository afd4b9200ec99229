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


class _PinIn:
    def __init__(self, spec):
        pull = {"up": machine.Pin.PULL_UP, "down": machine.Pin.PULL_DOWN}.get(spec.get("pull"))
        self.pin = machine.Pin(spec["pin"], machine.Pin.IN, pull)
        self.invert = spec.get("invert", False)

    def read(self):
        return bool(self.pin.value()) != self.invert


class _PinOut:
    def __init__(self, spec):
        self.pin = machine.Pin(spec["pin"], machine.Pin.OUT)
        self.invert = spec.get("invert", False)

    def write(self, v):
        self.pin.value(bool(v) != self.invert)


class _Rgb:
    # an addressable RGB LED (S3/C3 DevKits): on = dim white
    def __init__(self, spec):
        import neopixel

        self.np = neopixel.NeoPixel(machine.Pin(spec["pin"]), 1)

    def write(self, v):
        self.np[0] = (16, 16, 16) if v else (0, 0, 0)
        self.np.write()


class _Adc:
    def __init__(self, spec):
        self.adc = machine.ADC(machine.Pin(spec["adc"]))
        self.adc.atten(machine.ADC.ATTN_11DB)

    def read(self):
        return self.adc.read_uv() // 1000  # mV


class _McuTemperature:
    def __init__(self, spec):
        import esp32

        self.esp32 = esp32

    def read(self):
        if hasattr(self.esp32, "mcu_temperature"):  # S3, C3
            return float(self.esp32.mcu_temperature())
        return round((self.esp32.raw_temperature() - 32) / 1.8, 1)  # ESP32: Fahrenheit


def _source(spec):
    if not spec:
        return None
    if "adc" in spec:
        return _Adc(spec)
    if spec.get("sensor") == "mcu_temperature":
        return _McuTemperature(spec)
    mode = spec.get("mode")
    if mode == "in":
        return _PinIn(spec)
    if mode == "out":
        return _PinOut(spec)
    if mode == "rgb":
        return _Rgb(spec)
    return None


Platform.source = staticmethod(_source)
