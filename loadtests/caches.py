"""Cold pod caches before a run: vLLM's ``POST /reset_prefix_cache`` on every pod.

Two runs compared on the same seeded prompts must both start cold, or the second inherits
the first's warm prefixes. The routing suite (``fixtures.comparison``) and ``lamplighter load
--target both`` reset through this one function; where pods cannot (vLLM without its dev
endpoints answers 404/405) the caller reseeds the second run's prompts instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

__all__ = ["reset_prefix_caches"]


def reset_prefix_caches(pod_urls: Iterable[str], http: httpx.Client) -> bool:
    """Drop every pod's prefix cache; False when a pod does not offer the endpoint."""
    for url in pod_urls:
        response = http.post(url.rstrip("/") + "/reset_prefix_cache")
        if response.status_code in (404, 405):
            return False
        response.raise_for_status()
    return True
