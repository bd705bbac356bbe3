"""An LRU cache of rendered tiles under a memory budget (pure Python: no Qt, no torch).

Values are opaque (the GUI stores QPixmaps); the caller states each value's size in bytes. Keys are
grouped (by level and kind) so the painter can ask which levels have anything cached, for placeholders.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TileCache(Generic[K, V]):
    """Least-recently-used entries are evicted first once the byte total exceeds the budget.

    Not thread-safe by design: only the GUI thread touches it.
    """

    def __init__(self, budget_bytes: int, group_of: Callable[[K], Hashable] | None = None) -> None:
        if budget_bytes <= 0:
            raise ValueError("the tile cache budget must be positive")
        self._budget = budget_bytes
        self._group_of = group_of or (lambda k: None)
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._groups: dict[Hashable, set[K]] = {}
        self._bytes = 0

    @property
    def budget_bytes(self) -> int:
        return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        if value <= 0:
            raise ValueError("the tile cache budget must be positive")
        self._budget = value
        self._evict()

    @property
    def nbytes(self) -> int:
        """Total bytes of the entries held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        """The value for `key`, marking it most recently used; None when absent."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def peek(self, key: K) -> V | None:
        """The value for `key` without touching its recency."""
        item = self._items.get(key)
        return None if item is None else item[0]

    def put(self, key: K, value: V, nbytes: int) -> list[K]:
        """Store `value` as most recently used; returns the keys evicted to stay within the budget.

        The entry just stored is never evicted by its own insertion, even if it alone exceeds the budget.
        """
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        else:
            self._groups.setdefault(self._group_of(key), set()).add(key)
        self._items[key] = (value, nbytes)
        self._bytes += nbytes
        return self._evict(keep=key)

    def touch(self, keys: Iterable[K]) -> None:
        """Mark `keys` (those present) as most recently used, e.g. the tiles on screen."""
        for k in keys:
            if k in self._items:
                self._items.move_to_end(k)

    def discard(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]
            self._unindex(key)

    def clear(self) -> None:
        self._items.clear()
        self._groups.clear()
        self._bytes = 0

    def keys(self) -> list[K]:
        """Keys from least to most recently used."""
        return list(self._items)

    def groups(self) -> list[Hashable]:
        """The groups that have at least one entry."""
        return list(self._groups)

    def keys_in_group(self, group: Hashable) -> set[K]:
        return set(self._groups.get(group, ()))

    def _unindex(self, key: K) -> None:
        g = self._group_of(key)
        members = self._groups.get(g)
        if members is not None:
            members.discard(key)
            if not members:
                del self._groups[g]

    def _evict(self, keep: K | None = None) -> list[K]:
        evicted: list[K] = []
        while self._bytes > self._budget and self._items:
            oldest = next(iter(self._items))
            if oldest == keep:
                if len(self._items) == 1:
                    break
                self._items.move_to_end(oldest)
                continue
            _, size = self._items.pop(oldest)
            self._bytes -= size
            self._unindex(oldest)
            evicted.append(oldest)
        return evicted
