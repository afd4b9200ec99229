# ticks_ms()/ticks_diff() of MicroPython's time module; a monotonic stand-in under CPython, so
# that the firmware's pure logic runs in the host's unit tests too.
try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    from time import monotonic as _mono

    def ticks_ms():
        return int(_mono() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b
