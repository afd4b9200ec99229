# twintap device package: one twin of typed properties, served as a Tap endpoint and a
# Rapidomize client. Layering: links -> tap -> twin <- rpz; everything may use proto.
VERSION = "0.1.0"


def forget(*names):
    # Drop modules imported for a moment (boot-only work, a login, a registration, a BLE
    # connection), named relative to this package ("rpz.declare"): out of sys.modules and off
    # their package, so that the collector takes their heap back; the next use imports them
    # again. (The package is "twintap" on a board, another name under the unit tests.)
    import sys

    for name in names:
        name = __name__ + "." + name
        sys.modules.pop(name, None)
        pkg, _, leaf = name.rpartition(".")
        parent = sys.modules.get(pkg)
        if parent is not None and hasattr(parent, leaf):
            delattr(parent, leaf)
