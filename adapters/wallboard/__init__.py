"""The supervisors' wallboard: the live state of the projection, on a page pushed by SSE.

``omniroute wallboard`` (:mod:`omniroute.adapters.cli.wallboard`) serves
:func:`.app.create_app` with :func:`.server.serve`. The state comes from a
:class:`.sources.StateSource`: a projection database (:class:`.sources.DatabaseSource`)
or a log being written, projected as it grows (:class:`.sources.FollowingSource`), read
through :func:`omniroute.adapters.reporting.live.live_state`. The page is rendered on the
server (:mod:`.page`, its chart an inline SVG: :mod:`.chart`); a small script
(``static/wallboard.js``) swaps in the sections the event stream (:mod:`.stream`) pushes.
No build step, nothing fetched from elsewhere, nothing written.
"""

from .app import create_app
from .filters import Filters
from .server import serve
from .sources import DatabaseSource, FollowingSource, StateSource

__all__ = ["DatabaseSource", "Filters", "FollowingSource", "StateSource", "create_app", "serve"]
