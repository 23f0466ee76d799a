"""Committees loaded from member weight files, cached per model version (query and inference workers).

Loading M members costs more than scoring a shard or predicting one image, so a worker keeps the few
most recently used committees in memory. The compute device is chosen on first use, so building a
cache (at import or handler-registration time) costs nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from medal.model.device import ComputeDevice, select_device
from medal.model.fcn import SuggestiveFCN
from medal.model.weights import load_member

if TYPE_CHECKING:
    from medal.platform import Platform

__all__ = ["CommitteeCache", "committees_of"]


class CommitteeCache:
    """The members of recently used model versions, on one device, in eval mode.

    Args:
        fetch: object key -> bytes of a member file (e.g. ``store.get``).
        device: "auto", "cuda" or "cpu" (medal.model.device.select_device), chosen on first use.
        capacity: committees kept; the least recently used one is dropped first.

    Thread-safe: loads run one at a time, so two callers never load the same version twice. Callers
    hold :attr:`busy` while they run members, so that a worker given several messages at once (prefetch)
    runs one forward workload at a time instead of oversubscribing the CPU threads or the GPU memory.
    """

    def __init__(self, fetch: Callable[[str], bytes], device: str = "auto", capacity: int = 2) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.fetch = fetch
        self.device = device
        self.capacity = capacity
        self.loads = 0
        self.busy = threading.Lock()
        self._lock = threading.Lock()
        self._compute: ComputeDevice | None = None
        self._committees: OrderedDict[str, list[SuggestiveFCN]] = OrderedDict()

    @property
    def compute(self) -> ComputeDevice:
        with self._lock:
            return self._compute_locked()

    def _compute_locked(self) -> ComputeDevice:
        if self._compute is None:
            self._compute = select_device(self.device)
        return self._compute

    def get(self, model_version_id: str, member_keys: Sequence[str]) -> list[SuggestiveFCN]:
        """The members of ``model_version_id`` (loaded from ``member_keys`` on first use)."""
        if not member_keys:
            raise ValueError("a committee needs at least one member")
        with self._lock:
            cached = self._committees.get(model_version_id)
            if cached is not None:
                self._committees.move_to_end(model_version_id)
                return cached
            device = self._compute_locked().device
            members = [load_member(self.fetch(key), device) for key in member_keys]
            self.loads += 1
            self._committees[model_version_id] = members
            while len(self._committees) > self.capacity:
                self._committees.popitem(last=False)
            return members


_shared: dict[int, CommitteeCache] = {}
_shared_lock = threading.Lock()


def committees_of(platform: Platform) -> CommitteeCache:
    """The one committee cache of this process's platform, reading members from its object store.

    Shared by the consumers and the routes of the process (a bus handler's resources and a predict
    request use the same loaded committees), dropped when the platform is.
    """
    with _shared_lock:
        cache = _shared.get(id(platform))
        if cache is None:
            store = platform.store
            cache = CommitteeCache(store.get)
            _shared[id(platform)] = cache
            weakref.finalize(platform, _shared.pop, id(platform), None)
        return cache
