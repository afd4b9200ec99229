# Ad-hoc Tap routes (Dispatcher.add), for tests and tools: imported by the first add(), never
# by the firmware's own services, which answer in code (tap/dispatcher.py).
from .dispatcher import NO_METHOD, NO_RESOURCE


class Routes:
    # The ad-hoc routes of one object: res -> handlers by method (GET, POST, PUT).
    def __init__(self):
        self.res = {}

    def serve(self, session, method, inst, res, payload):
        h = self.res.get(res)
        if h is None:
            return NO_RESOURCE
        fn = h[method - 1]  # decode_frame lets GET (1), POST (2) and PUT (3) through only
        if fn is None:
            return NO_METHOD
        return fn(session, inst, payload)


def add(d, obj, res, get, put, post):
    # handler(session, inst, payload) -> bytes or None; a second add() of the same resource
    # adds its methods to the route, next to the object's services
    for svc in d._services.get(obj, ()):
        if isinstance(svc, Routes):
            break
    else:
        svc = Routes()
        d.register(obj, svc)
    old = svc.res.get(res, (None, None, None))
    svc.res[res] = (get or old[0], post or old[1], put or old[2])
