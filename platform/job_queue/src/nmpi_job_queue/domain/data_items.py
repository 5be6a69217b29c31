"""Data items (inputs and outputs) as stored: plain dicts, unique by URL."""

from __future__ import annotations

from typing import Any

from ..schemas.jobs import DataItem


def to_db(item: DataItem) -> dict[str, Any]:
    return {
        "url": str(item.url),
        "path": item.path,
        "hash": item.hash,
        "size": item.size,
        "content_type": item.content_type,
    }


def merge(existing: list[dict[str, Any]] | None, new: list[DataItem]) -> list[dict[str, Any]]:
    """Add or update items by URL, keeping order: repeating a PUT never duplicates an item."""
    merged = {item["url"]: item for item in existing or []}
    for item in new:
        stored = to_db(item)
        previous = merged.get(stored["url"], {})
        merged[stored["url"]] = {
            key: stored[key] if stored[key] is not None else previous.get(key) for key in stored
        }
    return list(merged.values())
