"""The S3 backend's short-lived knowledge of names (pure bookkeeping, a fake clock)."""

from __future__ import annotations

from pathlib import PurePosixPath

from backends.s3.metacache import UNKNOWN, Known, MetaCache

D = PurePosixPath("/bucket/d")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(ttl: float = 5.0) -> tuple[MetaCache, Clock]:
    clock = Clock()
    return MetaCache(ttl, clock=clock), clock


def test_a_snapshot_answers_for_every_name_in_it_until_it_expires() -> None:
    cache, clock = make()
    cache.put_snapshot(D, {"a": Known(False, size=1)})
    assert cache.get(D / "a") == Known(False, size=1)
    assert cache.get(D / "b") is None  # absent from a complete listing: missing
    assert cache.is_dir(D)
    clock.now += 5.0
    assert cache.get(D / "a") is UNKNOWN and cache.get(D / "b") is UNKNOWN
    assert cache.snapshot(D) is None


def test_our_writes_and_deletes_keep_the_snapshot_true() -> None:
    cache, _ = make()
    cache.put_snapshot(D, {"a": Known(False, size=1)})
    cache.wrote(D / "b", 7)
    assert cache.get(D / "b") == Known(False, size=7)
    assert set(cache.snapshot(D) or ()) == {"a", "b"}
    cache.removed(D / "a")
    assert cache.get(D / "a") is None and set(cache.snapshot(D) or ()) == {"b"}


def test_a_write_makes_its_parents_known_directories() -> None:
    cache, _ = make()
    cache.wrote(D / "x" / "y" / "f", 3)
    assert cache.is_dir(D / "x" / "y") and cache.is_dir(D / "x") and cache.is_dir(D)
    assert cache.get(PurePosixPath("/bucket/other")) is UNKNOWN


def test_forgetting_a_tree_drops_everything_below_it() -> None:
    cache, _ = make()
    cache.made_dir(D / "x")
    cache.wrote(D / "x" / "f", 1)
    cache.put_snapshot(D / "x" / "sub", {})
    cache.forget_tree(D / "x")
    assert cache.get(D / "x" / "f") is UNKNOWN
    assert cache.snapshot(D / "x" / "sub") is None
    cache.removed(D / "x")
    assert cache.get(D / "x") is None


def test_a_file_beside_a_directory_of_its_name_holds_a_directory() -> None:
    known = Known(False, size=1, also_dir=True)
    cache, _ = make()
    cache.put(D / "both", known)
    assert cache.is_dir(D / "both") and not known.is_dir and known.holds_dir


def test_ttl_zero_remembers_nothing_but_big_directories() -> None:
    cache, _ = make(ttl=0)
    cache.put_snapshot(D, {"a": Known(False)})
    cache.wrote(D / "b", 1)
    assert cache.get(D / "a") is UNKNOWN and cache.get(D / "b") is UNKNOWN
    cache.mark_big(D)
    assert cache.is_big(D)  # a hint that spares a page per write, not a fact about names


def test_the_number_of_names_is_bounded() -> None:
    cache = MetaCache(5.0, max_names=10, max_snapshots=2)
    for i in range(50):
        cache.put(D / f"f{i}", Known(False))
        cache.put_snapshot(D / f"s{i}", {})
    assert cache.get(D / "f0") is UNKNOWN and cache.get(D / "f49") == Known(False)
    assert cache.snapshot(D / "s0") is None and cache.snapshot(D / "s49") == {}


def test_snapshots_are_bounded_by_the_names_they_hold() -> None:
    cache = MetaCache(5.0, max_snapshot_names=10)
    cache.put_snapshot(D / "a", {f"f{i}": Known(False) for i in range(6)})
    cache.put_snapshot(D / "b", {f"f{i}": Known(False) for i in range(3)})
    cache.wrote(D / "b" / "new", 1)  # 10 names in all: both kept
    assert cache.snapshot(D / "a") is not None and cache.snapshot(D / "b") is not None
    cache.wrote(D / "b" / "newer", 1)  # 11: b is refreshed, a (the oldest) goes next
    cache.put_snapshot(D / "c", {"x": Known(False)})
    assert cache.snapshot(D / "a") is None
    assert cache.snapshot(D / "c") == {"x": Known(False)}
