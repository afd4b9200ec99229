# Tap dispatcher: request APDU in, response APDU out. Each LwM2M object is served by one
# service object (or a few, with disjoint resources) whose serve() picks the handler of a
# resource and method in code: bytecode stays in flash, while a table of closures per route
# would cost heap on every boot. Handlers return the response data (bytes or None) or raise
# TapError carrying the result code to answer with. The dispatcher renders every error, so
# bad input never escapes as an exception (spec tap-protocol.md sections 1-3).
from .. import log
from ..proto import DecodeError, frame, tapcodes

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_GET = const(1)
_ZERO_IV = bytes(16)
# What serve() returns for a request it has no handler for (response data is never an int):
NO_RESOURCE = const(0x84)  # not a resource of this service: NOT_FOUND
NO_METHOD = const(0x85)  # a resource of this service, not with this method: METHOD_NOT_ALLOWED


class TapError(Exception):
    # Raised by handlers; `code` is the Tap result code of the response.
    def __init__(self, code, msg=""):
        super().__init__(msg)
        self.code = code


class Session:
    # Per-link state: one per TCP client, one per UART or BLE link. `peer` keys what must
    # outlive a connection (the login lockout): "tcp:<host>", "uart:<name>".
    def __init__(self, link, peer=None):
        self.link = link
        self.peer = peer or link.split("#")[0]
        self.group = 0  # anonymous (tap/auth.py logs in and out)
        self.profile = 0  # the group whose rights apply (the group's alias)
        self.login_ms = 0
        self.lifetime = 0  # minutes, 0 = no expiry
        self.key = None  # session key of the encrypted channel (tap/auth.py)
        self.iv_req = self.iv_resp = _ZERO_IV
        self.rx_next = 0  # lowest acceptable id of the next encrypted frame
        self.encrypted = False  # the request in progress came through the encrypted carrier
        self.scram = None  # a SCRAM login between /1024//40 and /1024//41
        self.after = []  # run once the response has been built (and encrypted)


class Routes:
    # Ad-hoc routes of one object, for tests and tools (Dispatcher.add): res -> handlers by
    # method (GET, POST, PUT). The services answer in code and do not use this.
    def __init__(self):
        self.res = {}

    def add(self, res, get, put, post):
        old = self.res.get(res, (None, None, None))
        self.res[res] = (get or old[0], post or old[1], put or old[2])

    def serve(self, session, method, inst, res, payload):
        h = self.res.get(res)
        if h is None:
            return NO_RESOURCE
        fn = h[method - 1]  # decode_frame lets GET (1), POST (2) and PUT (3) through only
        if fn is None:
            return NO_METHOD
        return fn(session, inst, payload)


class Dispatcher:
    def __init__(self):
        self._services = {}  # obj -> tuple of services, asked in order
        self.requests = 0
        self.errors = 0
        self.guard = None  # guard(session, method, obj, inst, res): raises TapError to refuse

    def register(self, obj, service):
        # service.serve(session, method, inst, res, payload) -> data, NO_RESOURCE or NO_METHOD
        self._services[obj] = self._services.get(obj, ()) + (service,)

    def add(self, obj, res, get=None, put=None, post=None):
        # one ad-hoc route; handler(session, inst, payload) -> bytes or None
        for svc in self._services.get(obj, ()):
            if isinstance(svc, Routes):
                break
        else:
            svc = Routes()
            self.register(obj, svc)
        svc.add(res, get, put, post)

    def handle(self, apdu, session):
        # Whole request APDU -> whole response APDU (never raises)
        self.requests += 1
        try:
            method, obj, inst, res, payload = frame.decode_request(apdu)
        except DecodeError as e:
            self.errors += 1
            log.debug("tap", "bad request: " + str(e))
            return frame.encode_response(e.code)
        resp = self.call(session, method, obj, inst, res, payload)
        if session.after:
            # state changes that must follow the response (new keys, IVs, end of session)
            todo = session.after
            session.after = []
            for fn in todo:
                fn()
        return resp

    def _serve(self, session, method, obj, inst, res, payload):
        # -> response data of the first service that has the resource and method
        code = NO_RESOURCE
        for svc in self._services.get(obj, ()):
            data = svc.serve(session, method, inst, res, payload)
            if type(data) is not int:
                return data
            if data == NO_METHOD:
                code = NO_METHOD
        raise TapError(code)

    def call(self, session, method, obj, inst, res, payload):
        # One decoded request -> response APDU (also used by multi-request and encryption)
        try:
            if self.guard is not None:
                self.guard(session, method, obj, inst, res)
            data = self._serve(session, method, obj, inst, res, payload)
            status = tapcodes.CONTENT if method == _GET else tapcodes.CHANGED
            return frame.encode_response(status, data or b"")
        except TapError as e:
            self.errors += 1
            return frame.encode_response(e.code)
        except DecodeError as e:
            self.errors += 1
            return frame.encode_response(e.code)
        except Exception as e:  # a handler bug: answer 0xA0, keep serving
            self.errors += 1
            log.error("tap", "handler %s failed: %r" % (frame.format_path(obj, inst, res), e))
            return frame.encode_response(tapcodes.INTERNAL_SERVER_ERROR)
