# twintap device package: one twin of typed properties, served as a Tap endpoint and a
# Rapidomize client. Layering: links -> tap -> twin <- rpz; everything may use proto.
VERSION = "0.1.0"
