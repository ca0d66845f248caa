"""The pods ``exec``, ``attach`` and ``portforward`` subresources: streams over WebSocket and
SPDY.

``targets`` checks a request before the upgrade (the API server's own 404/400 answers);
``channels`` is the ``*.channel.k8s.io`` framing; ``exec_session`` runs a command in a
container's context and pumps its stdio; ``spdy`` is the SPDY/3.1 framing and
``spdy_session`` a server's SPDY session and upgrade, which ``portforward`` (port-forwarding)
and ``remotecommand`` (exec and attach over SPDY) build on; ``handlers`` are the tornado
handlers tying them together.
"""
