# Board entry point: puts the firmware on sys.path and runs twintap.boot (the board file,
# the configuration, the hardware objects, the app). Kept this small because a board compiles
# main.py into its heap; the rest is .mpy bytecode, used in place from a ROMFS partition.
import sys

if "lib" not in sys.path and "/lib" not in sys.path:
    sys.path.append("lib")
if sys.platform != "esp32":
    # The virtual board's ROMFS partition, mapped by its launcher as a board maps its flash
    # (twintap.romfs); on a board MicroPython mounts /rom and puts /rom/lib on sys.path itself.
    import os

    _rom = os.getenv("TWINTAP_ROMFS")
    if _rom:
        import uctypes
        import vfs

        _a, _n = _rom.split(":")
        vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(_a), int(_n))), "/rom")
        sys.path.insert(sys.path.index(".frozen") + 1 if ".frozen" in sys.path else 0,
                        "/rom/lib")
        del _a, _n, uctypes, vfs
    del _rom, os

from twintap.boot import main  # noqa: E402

main = main()  # the app's main task, built (twintap.boot is forgotten by then)
from twintap.app import serve  # noqa: E402

serve(main)
