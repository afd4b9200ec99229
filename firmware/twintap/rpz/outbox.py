# QoS 1 event outbox: bounded, persisted in flash, replayed in order, removed only on PUBACK.
# Flash layout (append-only, cheap on wear): "outbox.log" holds one JSON event per line;
# "outbox.ack" holds the highest acknowledged seq (and the last seq ever used). Events are
# acknowledged in order by seq, so one number says what is done. When everything is
# acknowledged the log is emptied. A torn last line (power lost mid-append) is skipped.
import json

from .. import store

LOG = "outbox.log"
ACK = "outbox.ack"


class Outbox:
    def __init__(self, limit=64, log=LOG, ack=ACK):
        self.limit = limit
        self.log_path = log
        self.ack_path = ack
        self.items = []  # [seq, payload str], oldest first
        self.dropped = 0
        st = store.load(ack, {}) or {}
        self.acked = st.get("acked", 0)
        self.seq = st.get("seq", self.acked)
        self.dropped = st.get("dropped", 0)
        self.floor = st.get("floor", 0)  # events up to here were dropped (counted already)
        self._lines = 0
        self._torn = False  # the log ends in a torn line: start the next on a new line
        self._load()

    def _load(self):
        try:
            f = open(self.log_path)
        except OSError:
            try:  # power lost inside _rewrite, between the remove and the rename
                f = open(self.log_path + ".tmp")
            except OSError:
                return
        with f:
            for line in f:
                self._torn = not line.endswith("\n")
                try:
                    seq, payload = json.loads(line)
                except (ValueError, TypeError):
                    continue  # torn write
                if seq > self.seq:
                    self.seq = seq
                self._lines += 1
                if seq > self.acked and seq > self.floor:
                    self.items.append([seq, payload])
        self.items.sort(key=lambda it: it[0])
        while len(self.items) > self.limit:  # the limit was lowered
            self.floor = self.items.pop(0)[0]
            self.dropped += 1

    def next_seq(self):
        self.seq += 1
        return self.seq

    def add(self, seq, payload):
        # Keep an event until its PUBACK; drop (and count) the oldest when full.
        if len(self.items) >= self.limit:
            self.floor = self.items.pop(0)[0]
            self.dropped += 1
            self._save_ack()
        self.items.append([seq, payload])
        if self._lines >= 2 * self.limit:
            self._rewrite()
        with open(self.log_path, "a") as f:
            if self._torn:
                f.write("\n")
                self._torn = False
            f.write(json.dumps([seq, payload]) + "\n")
        self._lines += 1

    def _rewrite(self):
        # a long outage: keep the log as long as what it still has to deliver
        tmp = self.log_path + ".tmp"
        with open(tmp, "w") as f:
            for it in self.items[:-1]:
                f.write(json.dumps(it) + "\n")
        store.replace(tmp, self.log_path)
        self._lines = len(self.items) - 1

    def ack(self, seq):
        # PUBACK of event `seq`. Everything below the oldest pending event is done.
        for i in range(len(self.items)):
            if self.items[i][0] == seq:
                self.items.pop(i)
                break
        else:
            return  # dropped meanwhile, or a duplicate PUBACK
        self.acked = self.items[0][0] - 1 if self.items else self.seq
        self._save_ack()
        if not self.items:
            store.remove(self.log_path)
            self._lines = 0

    def _save_ack(self):
        store.save(
            self.ack_path,
            {"acked": self.acked, "seq": self.seq, "dropped": self.dropped, "floor": self.floor},
        )

    def __len__(self):
        return len(self.items)
