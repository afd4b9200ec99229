# Byte links -> request APDUs -> dispatcher -> response APDUs.
