"""The pods ``exec``, ``attach`` and ``portforward`` subresources: streams over WebSocket.

``targets`` checks a request before the upgrade (the API server's own 404/400 answers);
``channels`` is the ``*.channel.k8s.io`` framing; ``exec_session`` runs a command in a
container's context and pumps its stdio; ``spdy`` and ``portforward`` carry port-forwarding;
``handlers`` are the tornado handlers tying them together.
"""
