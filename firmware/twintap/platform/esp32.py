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

    def open_ble(self, path=None):
        # NimBLE through MicroPython's bluetooth module, and its UUID type
        import bluetooth

        return bluetooth.BLE(), bluetooth.UUID

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


# -- Wi-Fi station for twintap.onboard (Improv and config.json "wifi") ----------------------
_AUTH = ("NO", "WEP", "WPA", "WPA2", "WPA/WPA2", "WPA2 EAP", "WPA3", "WPA2/WPA3", "WAPI")


class _Wlan:
    # network.WLAN(STA_IF) behind the small interface onboard.Wifi uses
    def __init__(self):
        import network

        self.net = network
        self.sta = network.WLAN(network.STA_IF)
        self.sta.active(True)

    def scan(self):
        # -> [(ssid, rssi, auth text)], strongest first; blocks for about 2 s
        out = []
        for ssid, _bssid, _ch, rssi, sec, hidden in self.sta.scan():
            if hidden or not ssid:
                continue
            try:
                name = ssid.decode()
            except UnicodeError:
                continue
            out.append((name, rssi, _AUTH[sec] if 0 <= sec < len(_AUTH) else "WPA2"))
        out.sort(key=lambda n: -n[1])
        return out

    def connect(self, ssid, password):
        if self.sta.isconnected():
            self.sta.disconnect()
        self.sta.connect(ssid, password)

    def status(self):
        # "connected", "connecting", "idle", or why it failed
        if self.sta.isconnected():
            return "connected"
        s = self.sta.status()
        n = self.net
        for name, why in (
            ("STAT_WRONG_PASSWORD", "wrong password"),
            ("STAT_NO_AP_FOUND", "network not found"),
            ("STAT_HANDSHAKE_TIMEOUT", "handshake timeout"),
            ("STAT_ASSOC_FAIL", "association failed"),
            ("STAT_BEACON_TIMEOUT", "beacon timeout"),
        ):
            if s == getattr(n, name, None):
                return why
        return "idle" if s == getattr(n, "STAT_IDLE", None) else "connecting"

    def ip(self):
        return self.sta.ifconfig()[0]

    def rssi(self):
        try:
            return self.sta.status("rssi")
        except (OSError, ValueError):
            return None

    def disconnect(self):
        self.sta.disconnect()


def _wifi(self, board):
    return _Wlan()


Platform.wifi = _wifi
Platform.improv_console = True  # Improv frames on the console (USB serial), as ESPHome does
