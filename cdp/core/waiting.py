"""Looking for new work for a short while before giving up, as the processing and delivery drains do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def look_until(until: float, every: float, found: Callable[[], bool], woken: threading.Event | None = None) -> bool:
    """Ask `found` every `every` seconds until it answers yes (True) or the monotonic time `until` passes
    (False). A set `woken` ends a wait early and counts as found."""
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return False
        if woken is not None:
            if woken.wait(min(left, every)):
                return True
        else:
            time.sleep(min(left, every))
        if found():
            return True
