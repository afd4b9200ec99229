"""The dashboard's pieces without a browser: the bench report's Markdown, the store view's
shapes, and the store view against a platform store being written."""

from __future__ import annotations

from twintap.dashboard import markdown
from twintap.dashboard.storeview import StoreView, ack_json, rights, status_text
from twintap.platformstore import Registration, Store
from twintap.proto import rpzcodes as rc


def local(src: str) -> str | None:
    return f"/bench/{src}" if src in ("plot.png", "data.csv") else None


def test_markdown_renders_the_report_shapes_and_escapes_everything():
    html = markdown.render(
        "# Title\n\nSome **bold**, *em* and `a<b`.\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
        "- x\n- y\n  continued\n\n1. one\n2. two\n\n```\n<i>raw</i>\n```\n\n"
        "![p](plot.png) ![q](missing.png) [csv](data.csv) [web](https://example.invalid/)"
        " [js](javascript:alert(1)) <img src=x onerror=alert(1)>\n",
        local,
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<code>a&lt;b</code>" in html
    assert "<thead><tr><th>a</th><th>b</th></tr></thead>" in html and "<td>2</td>" in html
    assert "<ul><li>x</li><li>y continued</li></ul>" in html
    assert "<ol><li>one</li><li>two</li></ol>" in html
    assert "<pre><code>&lt;i&gt;raw&lt;/i&gt;</code></pre>" in html
    assert '<img src="/bench/plot.png" alt="p">' in html
    assert "[image q]" in html  # not a bench file: not loaded
    assert '<a href="/bench/data.csv"' in html and '<a href="https://example.invalid/"' in html
    assert "javascript:" not in html.replace("[js](javascript:", "")  # only as text
    assert 'href="javascript' not in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_rights_status_and_acks_in_words():
    assert [rights(m) for m in (4, 6, 1, 7, 0, None)] == ["r--", "rw-", "--x", "rwx", "---", "?"]
    assert status_text(rc.CHANGED) == "CHANGED 2.04"
    assert status_text(rc.WRITE) == "WRITE 0.02"
    assert status_text(None) == "no op"
    a = ack_json({"id": 3, "app": "a", "cid": "c", "t": 1.0, "ref": "9", "op": rc.NOT_FOUND,
                  "msg": None, "err": "no such property"})
    assert a["status"] == "NOT_FOUND 4.04" and a["ok"] is False and a["err"] == "no such property"
    ok = ack_json({"id": 4, "app": "a", "cid": "c", "t": 1.0, "ref": "9", "op": rc.WRITE,
                   "msg": '{"n": "led", "v": true}', "err": None})
    assert ok["ok"] is True and ok["msg"] == {"n": "led", "v": True}


def test_store_view_follows_a_store_being_written(tmp_path):
    view = StoreView(tmp_path)
    first = view.poll()
    assert first.error and first.devices == []  # no store yet: said once, not an exception
    store = Store(tmp_path / "platform.db")
    reg = Registration([{"n": "model", "v": "unix"}],
                       [{"n": "setpoint", "dt": "int", "rwx": 6, "u": "C", "v": 21}], None)
    store.register("app", "b1", reg, t=1000.0)

    def event(mid: int, v: int, seq: int, src: str) -> None:
        ev = {"_evt": "change", "n": "setpoint", "v": v, "seq": seq, "src": src}
        store.add_event("app", "b1", {"mid": mid, "op": 2, "msg": ev}, ev)

    event(1, 22, 1, "tap")
    event(2, 24, 3, "rpz")
    store.add_ack("app", "b1", "7", {"mid": 7, "op": rc.WRITE, "msg": {"n": "setpoint", "v": 24}})
    ch = view.poll()
    assert ch.error is None
    (dev,) = ch.devices
    assert (dev["app"], dev["cid"], dev["registrations"], dev["events"], dev["gaps"],
            dev["missing"]) == ("app", "b1", 1, 2, 1, 1)
    assert dev["att"] == {"model": "unix"} and dev["online"] is True
    (prop,) = dev["props"]
    assert prop["n"] == "setpoint" and prop["rights"] == "rw-" and prop["v"] == 24
    assert [(e["n"], e["v"], e["src"], e["seq"]) for e in ch.events] == [
        ("setpoint", 22, "tap", 1), ("setpoint", 24, "rpz", 3)]
    assert [a["status"] for a in ch.acks] == ["WRITE 0.02"]
    again = view.poll()
    assert again.devices is None and again.events == [] and again.acks == []  # nothing new
    event(3, 23, 2, "tap")
    ch = view.poll()
    assert [e["late"] for e in ch.events] == [True] and ch.devices[0]["missing"] == 0
    store.close()
    view.close()
