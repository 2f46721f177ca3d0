"""The checks a store's file passes before SQLite opens it, and the error of every refusal."""

from __future__ import annotations

from pathlib import Path

__all__ = ["StoreError", "check_file"]

_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database


class StoreError(ValueError):
    """The results store cannot be used; the message names the file and what is wrong."""


def check_file(path: Path) -> None:
    """Refuse, before SQLite opens it, a file that is not a SQLite database or is truncated.

    The header (https://www.sqlite.org/fileformat.html#the_database_header) gives the page size
    (offset 16) and the page count (offset 28, valid when the change counter at 24 equals the
    number at 92). A file shorter than that is truncated, unless a log (``-wal``, ``-journal``) is
    beside it: a checkpoint cut short may leave the file short, and SQLite completes it from the
    log.
    """
    if not path.is_file() or path.stat().st_size == 0:  # SQLite makes an empty file a new store
        return
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(100)
    if not head.startswith(_MAGIC):
        raise StoreError(f"{path}: not a SQLite database (it starts with {head[:16]!r})")
    if len(head) < 100:
        raise StoreError(f"{path}: truncated: {size} bytes, shorter than SQLite's header")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    for log in ("-wal", "-journal"):
        side = path.with_name(path.name + log)
        if side.is_file() and side.stat().st_size > 0:
            return
    if pages and head[24:28] == head[92:96] and size < pages * page_size:
        raise StoreError(
            f"{path}: truncated: its header says {pages} pages of {page_size} bytes "
            f"({pages * page_size} bytes) but the file has {size}"
        )
    if page_size and size % page_size:
        raise StoreError(f"{path}: truncated: {size} bytes is not a whole number of pages")
