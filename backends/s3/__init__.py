"""The S3 backend (aiobotocore): buckets served as directory trees.

``backends.registry`` imports this package only when a root says ``s3://``, so a
server that never sees one does not need aiobotocore.
"""

from __future__ import annotations

import aiobotocore  # noqa: F401  (a missing package is reported by the registry)

from .client import S3Settings
from .errors import ObjectChanged, UnsupportedWrite
from .pathio import S3Factory, S3PathIO, S3Stat
from .store import S3Store
from .writer import WRITE_BUFFERS, BufferGauge

__all__ = (
    "WRITE_BUFFERS",
    "BufferGauge",
    "ObjectChanged",
    "S3Factory",
    "S3PathIO",
    "S3Settings",
    "S3Stat",
    "S3Store",
    "UnsupportedWrite",
)
