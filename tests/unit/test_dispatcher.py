# The Tap dispatcher (tap/dispatcher.py): services found by object, result codes for a missing
# resource (0x84) or method (0x85), the guard before either, handler failures as 0xA0, ad-hoc
# routes (add) next to services; and the device and target services on top of it. Same file
# under pytest and micropython.
try:
    from _runner import fw, run, setup_path
except ImportError:
    from ._runner import fw, run, setup_path

setup_path()

from twintap.proto import frame  # noqa: E402

dispatcher = fw("tap.dispatcher")
GET, PUT, POST = frame.GET, frame.PUT, frame.POST


class Thing:
    # a service with /7//1 (GET, PUT) and /7//2 (POST)
    def __init__(self):
        self.value = b"v"

    def serve(self, s, m, inst, res, p):
        if res == 1:
            if m == GET:
                return self.value
            if m == PUT:
                self.value = bytes(p)
                return None
        elif res == 2:
            if m == POST:
                raise ValueError("a handler bug")
        else:
            return dispatcher.NO_RESOURCE
        return dispatcher.NO_METHOD


def req(d, method, obj, res, payload=b"", s=None):
    apdu = frame.encode_request(method, obj, None, res, payload)
    return frame.decode_response(d.handle(apdu, s or dispatcher.Session("tcp#1")))


def make():
    d = dispatcher.Dispatcher()
    d.register(7, Thing())
    return d


def test_service_result_codes():
    d = make()
    assert req(d, GET, 7, 1) == (0x45, b"v")
    assert req(d, PUT, 7, 1, b"w") == (0x44, b"")
    assert req(d, GET, 7, 1) == (0x45, b"w")
    assert req(d, POST, 7, 1)[0] == 0x85
    assert req(d, GET, 7, 2)[0] == 0x85
    assert req(d, GET, 7, 3)[0] == 0x84
    assert req(d, GET, 8, 1)[0] == 0x84
    assert d.requests == 7 and d.errors == 4


def test_handler_failure_answers_a0_and_keeps_serving():
    d = make()
    assert req(d, POST, 7, 2)[0] == 0xA0
    assert req(d, GET, 7, 1) == (0x45, b"v")


class Full:
    # a service that finds the heap full, and whose error path would need the heap too
    def serve(self, s, m, inst, res, p):
        raise MemoryError("memory allocation failed")


def test_full_heap_answers_a0_and_keeps_serving():
    d = make()
    d.register(9, Full())
    assert req(d, GET, 9, 1)[0] == 0xA0
    assert fw("log").recent()[-1] == "[E][tap] out of memory"
    assert req(d, GET, 7, 1) == (0x45, b"v")
    assert d.errors == 1


def test_guard_runs_before_the_lookup():
    d = make()

    def guard(s, method, obj, inst, res):
        if method != GET:
            raise dispatcher.TapError(0x81)

    d.guard = guard
    assert req(d, PUT, 7, 99)[0] == 0x81
    assert req(d, POST, 9, 1)[0] == 0x81
    assert req(d, GET, 7, 99)[0] == 0x84


def test_ad_hoc_routes_next_to_a_service():
    d = make()
    d.add(7, 5, get=lambda s, i, p: b"five")
    d.add(7, 5, put=lambda s, i, p: None)  # a second add adds methods to the route
    d.add(7, 1, post=lambda s, i, p: b"posted")  # a method the service does not take
    assert req(d, GET, 7, 5) == (0x45, b"five")
    assert req(d, PUT, 7, 5)[0] == 0x44
    assert req(d, POST, 7, 5)[0] == 0x85
    assert req(d, GET, 7, 1) == (0x45, b"v")
    assert req(d, POST, 7, 1) == (0x44, b"posted")
    assert req(d, GET, 7, 6)[0] == 0x84
    d.add(9, 0, get=lambda s, i, p: b"nine")
    assert req(d, GET, 9, 0) == (0x45, b"nine")
    assert req(d, GET, 9, 1)[0] == 0x84


class Plat:
    name = "unix"

    def unique_id(self):
        return b"\x01\x02\x03\x04\x05\x06"

    def mem_free(self):
        return 1000


def test_device_and_target_services():
    device = fw("tap.device")
    done = []
    system = device.System(Plat(), lambda: done.append("reboot"), lambda: done.append("reset"))
    d = dispatcher.Dispatcher()
    device.mount(d, system, {"name": "esp32-test", "vcc_mv": 3000})
    fw("tap.target").mount(d)
    assert req(d, GET, 3, 0) == (0x45, b"twintap")
    assert req(d, GET, 3, 1) == (0x45, b"esp32-test")
    assert req(d, GET, 3, 2) == (0x45, b"TT010203040506")
    assert req(d, GET, 3, 7) == (0x45, b"\x00\x00\x0b\xb8")
    assert req(d, GET, 3, 10) == (0x45, b"\x00\x00\x03\xe8")
    assert req(d, PUT, 3, 0, b"x")[0] == 0x85
    assert req(d, GET, 3, 4)[0] == 0x85
    assert req(d, GET, 3, 8)[0] == 0x84
    assert req(d, POST, 3, 11, b"\x00\x00\x00\x2a")[0] == 0x44
    assert req(d, GET, 3, 11) == (0x45, b"\x00\x00\x00\x2a")
    assert req(d, POST, 3, 11, b"\x01")[0] == 0x86
    assert req(d, POST, 3, 12)[0] == 0x44
    assert req(d, GET, 3, 11) == (0x45, b"\x00\x00\x00\x00")
    assert req(d, POST, 3, 4)[0] == 0x44 and done == ["reboot"]
    assert req(d, GET, 1027, 1) == (0x45, b"\x04")
    assert req(d, POST, 1027, 3)[0] == 0x44
    assert req(d, PUT, 1027, 3)[0] == 0x85
    assert req(d, PUT, 1027, 33, b"\x00")[0] == 0xA1
    assert req(d, GET, 1027, 99)[0] == 0x84


if __name__ == "__main__":
    run(globals())
