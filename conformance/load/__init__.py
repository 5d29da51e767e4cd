"""Load and soak on Locust (issue 15): ``conformance load``.

Three kinds of process, because Locust's gevent monkey-patching and the kit's asyncio servers do
not mix reliably in one interpreter:

- the **scene** (:mod:`.scene`, plain asyncio + threads): the gatekeeper simulator playing G, the
  embedded reference provider unless ``--target`` is given, the users and blobs the load needs,
  and a small control API the Locust users read their plan and G-signed push tokens from;
- **Locust** itself (:mod:`.locustfile`, the ``locust`` command: one local process, or a master
  and N workers, or a distributed fleet joining a master);
- the **runner** (:mod:`.runner`, what ``conformance load`` runs): starts the other two, then
  judges Locust's merged CSV stats and the scene's observations into ``LOAD-*`` verdicts
  (:mod:`.judge`) written through the kit's report machinery.
"""
