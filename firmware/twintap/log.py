# One log line shape for the board: "[L][tag] message", L in E W I D (ESPHome-like), so that
# `twintap monitor` and the virtual board can colour and filter lines. Never log secrets.
# The last errors and warnings stay in a small ring, readable from the REPL
# (`from twintap import log; log.recent()`), which `twintap doctor` reports.
level = 3  # 0 none, 1 errors, 2 warnings, 3 info, 4 debug
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_RING = const(10)  # errors and warnings kept in memory
_ring = []
dropped = 0  # ring entries pushed out by newer ones


def _log(lvl, tag, msg):
    # never raises for want of heap: a line that does not fit is not written (so a caller on
    # an out-of-memory path logs with a constant message and no guard of its own)
    global dropped
    if lvl > level and lvl > 2:
        return
    try:
        line = "[" + "?EWID"[lvl] + "][" + tag + "] " + msg
        if lvl <= 2:
            if len(_ring) >= _RING:
                _ring.pop(0)
                dropped += 1
            _ring.append(line)
        if lvl <= level:
            print(line)
    except MemoryError:
        pass


def recent():
    # the last _RING error and warning lines, oldest first
    return list(_ring)


def error(tag, msg):
    _log(1, tag, msg)


def warn(tag, msg):
    _log(2, tag, msg)


def info(tag, msg):
    _log(3, tag, msg)


def debug(tag, msg):
    _log(4, tag, msg)
