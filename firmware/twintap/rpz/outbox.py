# QoS 1 event outbox: bounded, persisted in flash, replayed in order, removed only on PUBACK.
# Flash layout (append-only, cheap on wear): "outbox.log" holds one JSON event per line;
# "outbox.ack" holds the highest acknowledged seq (and the last seq ever used). Events are
# acknowledged in order by seq, so one number says what is done. When everything is
# acknowledged the log is emptied. A torn last line (power lost mid-append) is skipped.
# The heap holds (seq, offset of its line in the log) per event, not the event: a burst of
# Tap writes, or an outage, fills the flash and not the heap; an event is read back from
# the log when it is sent (payload()).
import json

from .. import store

_LOG = "outbox.log"
_ACK = "outbox.ack"


class Outbox:
    def __init__(self, limit=64):
        self.limit = limit
        self.items = []  # (seq, offset of its line in the log), oldest first
        st = store.load(_ACK, {}) or {}
        self.acked = st.get("acked", 0)
        self.seq = st.get("seq", self.acked)
        self.dropped = st.get("dropped", 0)
        self.floor = st.get("floor", 0)  # events up to here were dropped (counted already)
        self._lines = 0
        self._size = 0  # bytes in the log
        self._torn = False  # the log ends in a torn line: start the next on a new line
        try:
            f = open(_LOG, "rb")
        except OSError:
            try:  # power lost while the log was rewritten, between the remove and the rename
                store.replace(_LOG + ".tmp", _LOG)
                f = open(_LOG, "rb")
            except OSError:
                return
        with f:
            for line in f:
                at = self._size
                self._size += len(line)
                self._torn = not line.endswith(b"\n")
                try:
                    seq = json.loads(line)[0]  # (its event is read again when sent)
                except (ValueError, TypeError, IndexError, KeyError):
                    continue  # torn write
                if seq > self.seq:
                    self.seq = seq
                self._lines += 1
                if seq > self.acked and seq > self.floor:
                    self.items.append((seq, at))
        self.items.sort()  # by seq (unique)
        while len(self.items) > self.limit:  # the limit was lowered
            self.floor = self.items.pop(0)[0]
            self.dropped += 1

    def next_seq(self):
        self.seq += 1
        return self.seq

    def payload(self, at):
        # the event whose line starts at offset `at` of the log
        with open(_LOG, "rb") as f:
            f.seek(at)
            return json.loads(f.readline())[1]

    def add(self, seq, payload):
        # Keep an event until its PUBACK; drop (and count) the oldest when full.
        items = self.items
        if len(items) >= self.limit:
            self.floor = items.pop(0)[0]
            self.dropped += 1
            self._save_ack()
        if self._lines >= 2 * self.limit:
            # a long outage: keep the log as long as what it still has to deliver
            tmp = _LOG + ".tmp"
            n = 0
            with open(tmp, "wb") as out, open(_LOG, "rb") as f:
                for i in range(len(items)):
                    f.seek(items[i][1])
                    line = f.readline()
                    items[i] = (items[i][0], n)
                    out.write(line)
                    n += len(line)
            store.replace(tmp, _LOG)
            self._lines = len(items)
            self._size = n
            self._torn = False
        line = (json.dumps((seq, payload)) + "\n").encode()
        with open(_LOG, "ab") as f:
            if self._torn:
                f.write(b"\n")
                self._size += 1
                self._torn = False
            f.write(line)
        items.append((seq, self._size))
        self._size += len(line)
        self._lines += 1

    def ack(self, seq):
        # PUBACK of event `seq`. Everything below the oldest pending event is done.
        items = self.items
        for i in range(len(items)):
            if items[i][0] == seq:
                items.pop(i)
                break
        else:
            return  # dropped meanwhile, or a duplicate PUBACK
        self.acked = items[0][0] - 1 if items else self.seq
        self._save_ack()
        if not items:
            store.remove(_LOG)
            self._lines = self._size = 0
            self.items = []  # not the list grown during an outage: its room goes back too

    def _save_ack(self):
        store.save(_ACK, {"acked": self.acked, "seq": self.seq, "dropped": self.dropped,
                          "floor": self.floor})
