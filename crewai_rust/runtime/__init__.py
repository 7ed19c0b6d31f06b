"""RUNTIME: fast paths inside CrewAI's own engine (Flow runs, file store, memory saves).

Python-only: every patch here removes work (a class build, an event loop, a
thread hop, a queue) rather than computing something faster, so there is no
kernel for a Rust twin to speed up. ``patch()`` installs it through
``_activation``; each piece can be switched off with an option (see ``_config``).
"""

from __future__ import annotations

__all__: list[str] = []
