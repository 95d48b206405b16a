"""The fsspec backend: any filesystem fsspec knows, served as an FTP tree.

``backends.registry`` sends every root whose scheme it does not own here
(``gcs://``, ``abfs://``, ``sftp://``...), and any ``fsspec+<protocol>://`` root,
which forces fsspec even for protocols a native backend serves
(``fsspec+file:///srv/ftp``, ``fsspec+memory://alice``, ``fsspec+s3://bucket/prefix``).
"""

from __future__ import annotations

import fsspec  # noqa: F401  (a missing package is reported by the registry)

from .options import PACKAGES, FsspecSettings
from .pathio import FsspecFactory, FsspecPathIO, FsspecStat
from .store import FsspecStore

__all__ = (
    "PACKAGES",
    "FsspecFactory",
    "FsspecPathIO",
    "FsspecSettings",
    "FsspecStat",
    "FsspecStore",
)
