# Tap dispatcher: request APDU in, response APDU out. Handlers are registered per
# (object, resource) and per method; they return the response data (bytes or None) or raise
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


class Dispatcher:
    def __init__(self):
        self._routes = {}  # (obj, res) -> {method: handler}
        self.requests = 0
        self.errors = 0
        self.guard = None  # guard(session, method, obj, inst, res): raises TapError to refuse

    def add(self, obj, res, get=None, put=None, post=None):
        # handler(session, inst, payload) -> bytes or None
        m = self._routes.setdefault((obj, res), {})
        if get:
            m[frame.GET] = get
        if put:
            m[frame.PUT] = put
        if post:
            m[frame.POST] = post

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

    def call(self, session, method, obj, inst, res, payload):
        # One decoded request -> response APDU (also used by multi-request and encryption)
        try:
            if self.guard is not None:
                self.guard(session, method, obj, inst, res)
            methods = self._routes.get((obj, res))
            if methods is None:
                raise TapError(tapcodes.NOT_FOUND)
            fn = methods.get(method)
            if fn is None:
                raise TapError(tapcodes.METHOD_NOT_ALLOWED)
            data = fn(session, inst, payload)
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
