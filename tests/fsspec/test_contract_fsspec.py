"""The storage contract over fsspec: memory, local disk and s3fs.

The contract tests are the very functions of ``tests/backends/test_contract.py``
(every test taking the ``backend`` fixture), collected here again with this
directory's ``backend`` fixture.
"""

from __future__ import annotations

import inspect

from tests.backends import test_contract as contract

for _name, _test in vars(contract).items():
    if _name.startswith("test_") and "backend" in inspect.signature(_test).parameters:
        globals()[_name] = _test
del _name, _test


