"""The conformance kit: the pytest plugin and suite, the gatekeeper simulator, reports."""
__version__ = "0.1.0"
