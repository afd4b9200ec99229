# Rapidomize MQTT topics of one device instance (spec rapidomize.md, "Topics").
# `cid` is the client id; "_" when none is configured (single instance).
# Only what is used per message is kept; the subscriptions are built when subscribing.


class Topics:
    def __init__(self, app_id, client_id="_", icapp_id=None):
        if not app_id or "/" in app_id or "+" in app_id or "#" in app_id:
            raise ValueError("app id must be non-empty, without '/', '+' or '#'")
        cid = "/cid/" + (client_id or "_")
        self.client_id = app_id + cid  # MQTT client id
        self.register = "/api/v1/mo/" + self.client_id  # PATCH and READ of declared properties
        self.event = self.register + "/event"
        self.icapp_event = None
        if icapp_id:
            self.icapp_event = "/api/v1/icapp/" + icapp_id + cid + "/event"

    def ack(self, ref_id):
        return self.register + "/ack/" + str(ref_id)

    def subscriptions(self):
        # SSRs for this instance, SSRs for every instance of the app (write, exec: the only
        # topic without "/cid/"), ICApp requests for this instance
        mine = "$" + self.register
        subs = [mine, mine[: mine.find("/cid/")]]
        if self.icapp_event:
            subs.append("$" + self.icapp_event[:-6])  # less "/event"
        return subs
