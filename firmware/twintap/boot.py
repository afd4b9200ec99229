# Start-up, run by main.py: read the board file and the configuration, create the hardware
# objects for this platform, inject them into the app, and hand main.py the app's main task
# (this module is forgotten before it runs: boot-only, like bootcfg.py). On the unix port (the
# virtual board) options come from the command line: --tcp-port N --tcp-host H --uart PATH
# --ble PATH (the emulated radio's socket). It lives in the package (in a board's ROMFS
# partition when deployed with --romfs) so that its bytecode is not compiled into the heap.
import json
import sys

_GC_EVERY_AT_BOOT = 2048  # bytes allocated between collections while starting


def _load(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default
    except ValueError:
        print("[E][main] %s is not valid JSON; using defaults" % path)
        return default


def _options():
    opts = {}
    argv = sys.argv[1:]
    i = 0
    while i + 1 < len(argv):
        if argv[i].startswith("--"):
            opts[argv[i][2:]] = argv[i + 1]
        i += 2
    return opts


def main():
    import gc

    # collect every 2 KB allocated while the firmware loads, not only when the heap is full:
    # what each module keeps then packs low instead of among the garbage of the loading
    # (app.run() sets the rule for the rest: see there)
    gc.threshold(_GC_EVERY_AT_BOOT)
    board = _load("board.json", {})
    from twintap import bootcfg  # config.json checked; what fails is left out (safe mode)

    config, safe = bootcfg.load_config()
    opts = _options()
    if sys.platform == "esp32":
        from twintap.platform.esp32 import Platform
    else:
        from twintap.platform.unix import Platform
    platform = Platform()
    tap_cfg = config.get("tap", {})
    tcp_port = int(opts.get("tcp-port", tap_cfg.get("tcp_port", 2000)))
    tcp_host = opts.get("tcp-host", tap_cfg.get("tcp_host", "0.0.0.0"))
    uart_path = opts.get("uart")
    uart = platform.open_uart(board.get("uart"), uart_path)
    uart_name = uart_path or ("uart%d" % board["uart"]["id"] if uart else None)
    ble = ble_label = None
    if config.get("ble_name", board.get("ble_name")):  # "ble_name": "" turns BLE off
        try:
            ble = platform.open_ble(opts.get("ble"))
            ble_label = opts.get("ble") or "on"
        except (OSError, ImportError) as e:
            print("[E][main] no BLE radio: %s" % e)

    gc.collect()
    from twintap.app import App

    gc.collect()

    try:
        app = App(platform, board, config, uart, uart_name, ble, ble_label)
        bootcfg.apply_users(app.tapcfg, config)
    except Exception as e:  # never a boot loop over a configuration: start without it
        safe = "start-up failed with config.json (%s: %s)" % (e.__class__.__name__, e)
        config = {}
        app = None
        board = _load("board.json", {})  # again: the first App took its parts as it went
        app = App(platform, board, config, uart, uart_name, ble, ble_label)
    del bootcfg
    from twintap import forget, onboard

    forget("bootcfg")  # boot-only: its heap comes back

    onboard.safe_mode(safe)
    forget("boot")  # this module too: main.py runs what it returns (app.serve)
    gc.collect()
    return app.run(tcp_host, tcp_port)

