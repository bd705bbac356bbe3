"""The LRU tile cache: budget, recency, groups."""

from __future__ import annotations

import pytest

from viewer.app.tilecache import TileCache


def test_evicts_least_recently_used_within_budget() -> None:
    c: TileCache[str, int] = TileCache(300)
    assert c.put("a", 1, 100) == []
    c.put("b", 2, 100)
    c.put("c", 3, 100)
    assert c.get("a") == 1  # a is now the most recent
    assert c.put("d", 4, 100) == ["b"]
    assert "b" not in c and c.nbytes == 300 and len(c) == 3
    assert c.keys() == ["c", "a", "d"]


def test_replacing_a_key_updates_its_size() -> None:
    c: TileCache[str, int] = TileCache(1000)
    c.put("a", 1, 400)
    c.put("a", 2, 100)
    assert c.nbytes == 100 and c.peek("a") == 2 and len(c) == 1


def test_an_oversized_entry_is_kept_alone() -> None:
    c: TileCache[str, int] = TileCache(100)
    c.put("a", 1, 50)
    assert c.put("big", 2, 500) == ["a"]
    assert c.keys() == ["big"]


def test_groups_track_levels() -> None:
    c: TileCache[tuple[str, float, int], int] = TileCache(250, group_of=lambda k: (k[0], k[1]))
    c.put(("liif", 2.0, 0), 0, 100)
    c.put(("liif", 3.0, 0), 0, 100)
    c.put(("liif", 3.0, 1), 0, 100)
    assert set(c.groups()) == {("liif", 3.0)}
    assert c.keys_in_group(("liif", 3.0)) == {("liif", 3.0, 0), ("liif", 3.0, 1)}
    c.discard(("liif", 3.0, 0))
    c.discard(("liif", 3.0, 1))
    assert c.groups() == [] and c.nbytes == 0


def test_touch_and_budget_change() -> None:
    c: TileCache[int, int] = TileCache(1000)
    for i in range(5):
        c.put(i, i, 100)
    c.touch([0, 1])
    c.budget_bytes = 300
    assert sorted(c.keys()) == [0, 1, 4]
    with pytest.raises(ValueError):
        TileCache(0)
