"""The machinery of ``twintap bench``: processes, statistics, echo floors, the measurements
of each section, and the report (markdown, JSON, PNG plots)."""
