"""Whatever a configuration holds, loading it ends in settings or a ConfigError that
names the problem: never another exception (a traceback at start)."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, load_settings
from gateway.config.keys import ARRAYS, ENV_ALIASES, TABLES, env_name
from gateway.config.loader import _Sources, build_settings

NAMES = sorted({part for table in [*TABLES, *ARRAYS] for part in table}
               | {key for keys in [*TABLES.values(), *ARRAYS.values()] for key in keys}
               | {"options", "static", "database", "permissions", "path", "readable", "writable"})

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["8MiB", "30s", "off", "0", "127.0.0.1:9121", "30000-30010", "/:rw",
                     "explicit", "implicit", "json", "static", "$argon2id$x", "anonymous", "*",
                     "a\x00b", "-1", "1e9", "[::1]:0"]),
)
keys = st.one_of(st.sampled_from(NAMES), st.text(alphabet=string.ascii_lowercase + "_", max_size=12))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_loads_or_is_refused_clearly(raw):
    try:
        build_settings(raw, _Sources(None, ""))
    except ConfigError as exc:
        assert str(exc)  # says something


ENV_NAMES = sorted({env_name(t, k) for t, ks in TABLES.items() for k in ks} | set(ENV_ALIASES))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(ENV_NAMES), st.text(max_size=24), max_size=5))
def test_any_environment_loads_or_is_refused_clearly(env):
    try:
        load_settings(env=env)
    except ConfigError as exc:
        assert "environment variable GATEWAY_" in str(exc)
