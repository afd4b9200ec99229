# Rapidomize topic layout (spec rapidomize.md): same file under pytest and micropython.
try:
    from _runner import fw, run
except ImportError:
    from ._runner import fw, run

Topics = fw("rpz.topics").Topics


def test_instance_topics():
    t = Topics("app1", "dev-7")
    assert t.client_id == "app1/cid/dev-7"
    assert t.register == "/api/v1/mo/app1/cid/dev-7"
    assert t.event == "/api/v1/mo/app1/cid/dev-7/event"
    assert t.ack(42) == "/api/v1/mo/app1/cid/dev-7/ack/42"
    assert t.subscriptions() == ["$/api/v1/mo/app1/cid/dev-7", "$/api/v1/mo/app1"]


def test_default_client_id_and_icapp():
    t = Topics("app1", None, "ic9")
    assert t.client_id == "app1/cid/_"
    assert t.icapp_event == "/api/v1/icapp/ic9/cid/_/event"
    assert t.subscriptions()[-1] == "$/api/v1/icapp/ic9/cid/_"


def test_bad_app_id():
    for bad in ("", "a/b", "a+", "#"):
        try:
            Topics(bad)
        except ValueError:
            continue
        raise AssertionError("accepted app id %r" % bad)


if __name__ == "__main__":
    run(globals())
