# Hardware seam: one module per platform; only these modules and main.py import machine,
# network or bluetooth. main.py picks one with sys.platform and injects it.
