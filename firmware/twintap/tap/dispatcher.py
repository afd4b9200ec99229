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
# What serve() returns for a request it has no handler for (response data is never an int):
NO_RESOURCE = const(0x84)  # not a resource of this service: NOT_FOUND
NO_METHOD = const(0x85)  # a resource of this service, not with this method: METHOD_NOT_ALLOWED
_OUT_OF_MEMORY = frame.encode_response(tapcodes.INTERNAL_SERVER_ERROR)


class TapError(Exception):
    # Raised by handlers: TapError(code[, msg]), `code` the Tap result code of the response
    # (args[0]; no __init__ of its own, one function less on the heap).
    pass


class Session:
    # Per-link state: one per TCP client, one per UART or BLE link. `peer` keys what must
    # outlive a connection (the login lockout): "tcp:<host>", "uart:<name>". The defaults
    # are class attributes: an instance holds in its dict only what differs from them.
    group = 0  # anonymous (tap/auth.py logs in and out)
    profile = 0  # the group whose rights apply (the group's alias)
    login_ms = 0
    lifetime = 0  # minutes, 0 = no expiry
    key = None  # session key of the encrypted channel (tap/auth.py)
    iv_req = iv_resp = bytes(16)
    rx_next = 0  # lowest acceptable id of the next encrypted frame
    encrypted = False  # the request in progress came through the encrypted carrier
    scram = None  # a SCRAM login between /1024//40 and /1024//41

    def __init__(self, link, peer=None):
        self.link = link
        self.peer = peer or link.split("#")[0]
        self.after = []  # run once the response has been built (and encrypted)


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
        # one ad-hoc route, for tests and tools (tap/routes.py, loaded only by them);
        # handler(session, inst, payload) -> bytes or None
        from .routes import add

        add(self, obj, res, get, put, post)

    def handle(self, apdu, session):
        # Whole request APDU -> whole response APDU (never raises: a full heap gets 0xA0,
        # built in advance, and the link keeps serving)
        self.requests += 1
        try:
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
        except MemoryError:
            self.errors += 1
            log.error("tap", "out of memory")
            return _OUT_OF_MEMORY

    def call(self, session, method, obj, inst, res, payload):
        # One decoded request -> response APDU (also used by multi-request and encryption):
        # the response data of the first service that has the resource and method
        try:
            if self.guard is not None:
                self.guard(session, method, obj, inst, res)
            code = NO_RESOURCE
            for svc in self._services.get(obj, ()):
                data = svc.serve(session, method, inst, res, payload)
                if type(data) is not int:
                    status = tapcodes.CONTENT if method == _GET else tapcodes.CHANGED
                    return frame.encode_response(status, data or b"")
                if data == NO_METHOD:
                    code = NO_METHOD
        except TapError as e:
            code = e.args[0] if e.args else tapcodes.INTERNAL_SERVER_ERROR
        except DecodeError as e:
            code = e.code
        except MemoryError:
            raise  # handle() answers it without building anything
        except Exception as e:  # a handler bug: answer 0xA0, keep serving
            code = tapcodes.INTERNAL_SERVER_ERROR
            log.error("tap", "handler %s failed: %r" % (frame.format_path(obj, inst, res), e))
        self.errors += 1
        return frame.encode_response(code)
