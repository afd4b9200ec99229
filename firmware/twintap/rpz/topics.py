# Rapidomize MQTT topics of one device instance (spec rapidomize.md, "Topics").
# `cid` is the client id; "_" when none is configured (single instance).


class Topics:
    def __init__(self, app_id, client_id="_", icapp_id=None):
        if not app_id or "/" in app_id or "+" in app_id or "#" in app_id:
            raise ValueError("app id must be non-empty, without '/', '+' or '#'")
        cid = client_id or "_"
        base = "/api/v1/mo/" + app_id + "/cid/" + cid
        self.client_id = app_id + "/cid/" + cid  # MQTT client id
        self.register = base  # PATCH and READ of declared properties
        self.event = base + "/event"
        self.ack_prefix = base + "/ack/"
        self.ssr = "$" + base  # SSRs for this instance
        self.ssr_all = "$/api/v1/mo/" + app_id  # SSRs for every instance (write, exec)
        self.icapp_event = None
        self.icapp_ssr = None
        if icapp_id:
            self.icapp_event = "/api/v1/icapp/" + icapp_id + "/cid/" + cid + "/event"
            self.icapp_ssr = "$/api/v1/icapp/" + icapp_id + "/cid/" + cid

    def ack(self, ref_id):
        return self.ack_prefix + str(ref_id)

    def subscriptions(self):
        subs = [self.ssr, self.ssr_all]
        if self.icapp_ssr:
            subs.append(self.icapp_ssr)
        return subs
