"""The bundled conformance suite: one module per area, each check marked with the requirement
IDs it enforces (``@pytest.mark.requirement``). Collected by the plugin on a conformance run."""
