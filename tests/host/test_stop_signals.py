"""``twintap.StopSignals``: the serve loops' SIGINT/SIGTERM flag (no lock in the handler)."""

import os
import signal
import threading

from twintap import StopSignals


def test_wait_times_out_without_a_signal_and_returns_at_one():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        stop = StopSignals()
        assert stop.wait(0.05) is False
        assert stop.signum is None
        for sig in (signal.SIGTERM, signal.SIGINT):
            stop.signum = None
            timer = threading.Timer(0.05, os.kill, (os.getpid(), sig))
            timer.start()
            assert stop.wait(10) is True
            assert stop.signum == sig
            timer.join()
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_many_signals_during_waits_never_hang():
    # the old Event-based handler deadlocked when a signal landed while Event.wait held the lock
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stop = StopSignals()
        for _ in range(200):
            stop.signum = None
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.wait(5) is True
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
