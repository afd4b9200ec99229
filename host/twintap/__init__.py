"""twintap host companion: flash, deploy, provision, talk Tap, play the Rapidomize platform,
and run the firmware on the MicroPython unix port as a virtual board."""

__version__ = "0.1.0"


class TwintapError(Exception):
    """An error the CLI reports as ``twintap: <message>`` with a non-zero exit status."""
