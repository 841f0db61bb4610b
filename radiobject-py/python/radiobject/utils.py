"""URI helpers."""

from __future__ import annotations

from radiobject.ctx import Context, resolve_ctx

__all__ = ["uri_exists", "delete_tiledb_uri"]


def uri_exists(uri: str, ctx: Context | None = None) -> bool:
    """Whether a TileDB array or group exists at ``uri``."""
    return resolve_ctx(ctx).object_type(str(uri)) is not None


def delete_tiledb_uri(uri: str, ctx: Context | None = None) -> None:
    """Removes whatever is at ``uri`` (array, group, directory or S3 prefix) and everything below
    it; a missing ``uri`` is not an error."""
    resolve_ctx(ctx).remove(str(uri))
