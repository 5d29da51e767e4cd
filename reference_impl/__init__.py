"""Reference implementations bundled with the conformance kit.

``reference_impl.signal`` is a sans-IO Signal Protocol v3 core; ``reference_impl.media``
is the WhatsApp-style media encryption scheme. Nothing here does I/O.
"""
