# Minimal test runner so that one test file runs under pytest (CPython) and `micropython`.
# Under micropython: `micropython tests/unit/test_x.py` calls every test_* function and ends
# with the line "micropython: N passed, N failed" (exit status 1 on any failure).
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = HERE + "/../.."


def setup_path():
    # Make the firmware package importable when the file is run directly.
    fw = ROOT + "/firmware"
    if fw not in sys.path:
        sys.path.insert(0, fw)


def fw(name):
    # Import firmware module twintap.<name> on either interpreter. Under CPython the name
    # `twintap` is the host package (which shares only proto/), so the firmware tree is
    # loaded as the package `twintap_fw`; its modules import each other relatively.
    if sys.implementation.name == "micropython":
        setup_path()
        mod = __import__("twintap." + name)
        for part in name.split("."):
            mod = getattr(mod, part)
        return mod
    import importlib
    import importlib.util

    if "twintap_fw" not in sys.modules:
        pkg = ROOT + "/firmware/twintap"
        spec = importlib.util.spec_from_file_location(
            "twintap_fw", pkg + "/__init__.py", submodule_search_locations=[pkg]
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules["twintap_fw"] = mod
        spec.loader.exec_module(mod)
    return importlib.import_module("twintap_fw." + name)


def load_vectors(name="tap"):
    import json

    with open(ROOT + "/tests/vectors/" + name + ".json") as f:
        return json.load(f)


def run(ns):
    impl = sys.implementation.name
    passed = failed = 0
    for name in sorted(ns):
        fn = ns[name]
        if not name.startswith("test_") or not callable(fn):
            continue
        try:
            fn()
            passed += 1
            print("PASS", name)
        except Exception as e:  # report every failure, then carry on
            failed += 1
            print("FAIL", name)
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
            else:
                import traceback

                traceback.print_exception(e)
    print("%s: %d passed, %d failed" % (impl, passed, failed))
    sys.exit(1 if failed or not passed else 0)
