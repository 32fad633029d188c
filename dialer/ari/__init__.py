"""Our own thin ARI client for Asterisk 22: typed models, REST client, event stream, dispatcher.

- `dialer.ari.models`: frozen dataclasses generated from the ARI swagger, `parse_event`.
- `dialer.ari.client`: `AriClient` (REST over one pooled aiohttp session) and `AriConfig`.
- `dialer.ari.events`: `EventStream` (event WebSocket, reconnect, generation, snapshot hook).
- `dialer.ari.dispatch`: `Dispatcher` (one ordered queue and consumer task per call).
- `dialer.ari.errors`: the error hierarchy.
"""
