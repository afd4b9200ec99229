"""The board's REPL, driven the way ``mpremote connect PORT resume ...`` drives it.

One :class:`BoardRepl` holds one serial connection for a whole command (deploy, provision,
doctor) instead of one ``mpremote`` process per step: it interrupts ``main.py`` (Ctrl-C),
enters the raw REPL without a soft reset (``resume``), runs code, writes files atomically
(``NAME.tmp``, checked by size and SHA-256 on the board, then renamed) and finally either
resets the board or lets the firmware run again. It works the same on a real board's USB
serial and on a virtual board's REPL pty.

It uses mpremote's ``SerialTransport`` (pinned ``mpremote==1.29.0``); this module is the only
place that knows that API.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable

from twintap import TwintapError
from twintap.ports import explain, open_port

#: reboot as the firmware's platform.reset() does: machine.reset() on a board, exit
#: status 75 on the unix port (the virtual-board supervisor starts main.py again)
RESET_CODE = (
    "import sys\n"
    "if sys.platform in ('linux', 'darwin'):\n"
    "    sys.exit(75)\n"
    "import machine\n"
    "machine.reset()\n"
)

_FINISH = """
import os, hashlib, binascii
def _tt_finish(tmp, path, size, digest):
    h = hashlib.sha256()
    n = 0
    with open(tmp, 'rb') as f:
        while True:
            b = f.read(512)
            if not b:
                break
            h.update(b)
            n += len(b)
    if n != size or binascii.hexlify(h.digest()).decode() != digest:
        os.remove(tmp)
        raise OSError(path + ': the copy on the board differs from what was sent')
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)
_tt_finish(%r, %r, %d, %r)
del _tt_finish
"""


def _transport_error() -> type[Exception]:
    from mpremote.transport import TransportError

    return TransportError


class BoardError(TwintapError):
    """Code run on the board raised; ``device_error`` is the last line of its traceback."""

    def __init__(self, message: str, device_error: str = "") -> None:
        super().__init__(message)
        self.device_error = device_error


class BoardRepl:
    """A raw-REPL session on the board at ``port``. Use as a context manager."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = 10.0) -> None:
        from mpremote import transport_serial

        # mpremote prints what it got when entering the raw REPL fails; the error below
        # says it better. A module-level name, not redirect_stdout: that one is process-wide
        # and not thread-safe (fleet provisioning runs several sessions at once).
        transport_serial.print = lambda *a, **k: None
        SerialTransport = transport_serial.SerialTransport
        self.port = port
        self.timeout = timeout
        try:
            self.t = SerialTransport(port, baudrate=baud)
        except _transport_error() as e:
            # mpremote says only "failed to access": open it ourselves to learn why
            try:
                open_port(port, baud).close()
            except TwintapError as why:
                raise why from e
            raise TwintapError(f"cannot open {port}") from e
        except OSError as e:
            raise explain(port, e) from e
        try:
            self.t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
        except (_transport_error(), OSError) as e:
            self.t.close()
            raise TwintapError(
                f"no answer from MicroPython on {port}: is this the board's port, and does it "
                "run MicroPython (`twintap flash` installs it)? A program that keeps the port "
                "busy, or a board in its bootloader (hold nothing, press RESET), does this too"
            ) from e
        self.closed = False

    @property
    def serial(self):
        """The pyserial object under the session (to keep reading the console after a reset)."""
        return self.t.serial

    def __enter__(self) -> BoardRepl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running code --------------------------------------------------------------------
    def exec(self, code: str, timeout: float | None = None) -> str:
        """Run ``code`` on the board; its output. BoardError when it raises."""
        try:
            out, err = self.t.exec_raw(code, timeout=timeout or self.timeout)
        except _transport_error() as e:
            raise TwintapError(f"the board stopped answering on {self.port}: {e}") from e
        if err:
            text = err.decode(errors="replace").strip()
            last = text.splitlines()[-1] if text else "error"
            raise BoardError(f"on the board: {last}", last)
        return out.decode(errors="replace")

    def json(self, code: str, timeout: float | None = None) -> object:
        """Run ``code`` that prints one JSON document; that document."""
        out = self.exec(code, timeout)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise TwintapError(f"unexpected answer from the board: {out[:200]!r}") from e

    # -- files ---------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes, chunk: int = 2048,
                   progress: Callable[[int], None] | None = None) -> None:
        """Write ``data`` to ``path`` atomically: ``path.tmp`` in chunks, checked on the board
        (size and SHA-256), then renamed over ``path``. A session that dies on the way leaves
        ``path`` as it was."""
        tmp = path + ".tmp"
        if not data:
            self.exec(f"open({tmp!r}, 'wb').close()")
        for i in range(0, len(data), chunk):
            b64 = base64.b64encode(data[i:i + chunk]).decode()
            mode = "wb" if i == 0 else "ab"
            self.exec(
                f"import binascii\nwith open({tmp!r}, {mode!r}) as _tt:\n"
                f"    _tt.write(binascii.a2b_base64({b64!r}))\ndel _tt"
            )
            if progress:
                progress(min(i + chunk, len(data)))
        self.exec(_FINISH % (tmp, path, len(data), hashlib.sha256(data).hexdigest()))

    def mkdirs(self, dirs: list[str]) -> None:
        """Make these directories (parents first); existing ones are fine."""
        if dirs:
            self.exec(
                "import os\nfor _d in %r:\n    try:\n        os.mkdir(_d)\n"
                "    except OSError:\n        pass" % sorted(set(dirs), key=len)
            )

    def remove(self, paths: list[str]) -> None:
        """Remove these files (missing ones are fine)."""
        if paths:
            self.exec(
                "import os\nfor _p in %r:\n    try:\n        os.remove(_p)\n"
                "    except OSError:\n        pass" % list(paths)
            )

    def read_text(self, path: str) -> str | None:
        """A text file's content, or None when there is none."""
        r = self.json(
            "import json\ntry:\n    with open(%r) as _f:\n        print(json.dumps(_f.read()))\n"
            "except OSError:\n    print('null')" % path
        )
        return r if isinstance(r, str) else None

    # -- leaving ------------------------------------------------------------------------
    def reset(self) -> None:
        """Reboot the board (machine.reset(); exit 75 on a virtual board) and leave the
        serial connection open for reading its console."""
        try:
            self.t.exec_raw_no_follow(RESET_CODE)
        except (_transport_error(), OSError):
            pass  # a board that resets at once may cut the acknowledgement short
        self.t.in_raw_repl = False

    def resume(self) -> None:
        """Let the firmware run again: friendly REPL, then Ctrl-D (a soft reboot runs
        main.py), as after ``mpremote resume`` with a Ctrl-D at the prompt."""
        try:
            self.t.exit_raw_repl()
            self.t.read_until(1, b">>> ", timeout=2)
            self.t.serial.write(b"\x04")
        except (_transport_error(), OSError):
            pass

    def detach(self):
        """Hand the serial connection over (e.g. to read the console after a reset); the
        session is over, the port stays open."""
        self.closed = True
        return self.t.serial

    def close(self) -> None:
        """Close the serial connection (the board stays as it is)."""
        if not getattr(self, "closed", True):
            self.closed = True
            with contextlib.suppress(OSError):
                self.t.close()
