# One log line shape for the board: "[L][tag] message", L in E W I D (ESPHome-like), so that
# `twintap monitor` and the virtual board can colour and filter lines. Never log secrets.
level = 3  # 0 none, 1 errors, 2 warnings, 3 info, 4 debug
_LETTERS = "?EWID"


def _log(lvl, tag, msg):
    if lvl <= level:
        print("[" + _LETTERS[lvl] + "][" + tag + "] " + msg)


def error(tag, msg):
    _log(1, tag, msg)


def warn(tag, msg):
    _log(2, tag, msg)


def info(tag, msg):
    _log(3, tag, msg)


def debug(tag, msg):
    _log(4, tag, msg)
