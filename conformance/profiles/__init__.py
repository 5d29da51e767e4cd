"""The kit's profiles, as YAML data (loaded and validated by :mod:`conformance.profile`)."""
