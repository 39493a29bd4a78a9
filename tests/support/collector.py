"""Counting what the garbage collector's young collections find alive."""

from __future__ import annotations

import gc
from collections.abc import Awaitable


async def young_survivors(write: Awaitable[object]) -> int:
    """How many objects ``write`` (an awaitable) leaves in the young generations when they
    are collected: each such object joins the oldest generation, whose full collections,
    over every object of a busy process (the warm keys of 50,000 included), come once
    enough have joined. The collector runs every hundred objects here, so that a write's
    objects alive across one of its collections are counted; tuples are not, the collector
    stops tracking those that hold none of the objects it tracks."""
    survivors = 0

    def on_collection(phase: str, info: dict[str, int]) -> None:
        nonlocal survivors
        if phase == "start" and info["generation"] == 1:
            young = gc.get_objects(0) + gc.get_objects(1)
            survivors += sum(1 for o in young if type(o) is not tuple)

    gc.collect()
    threshold = gc.get_threshold()
    gc.set_threshold(100, 1, 1_000_000)
    gc.callbacks.append(on_collection)
    try:
        await write
    finally:
        gc.callbacks.remove(on_collection)
        gc.set_threshold(*threshold)
    return survivors
