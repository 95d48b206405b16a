"""README.md stays true: its configuration reference is the loader's own table, and
its configuration examples are accepted by the loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.config.reference import render_reference

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_configuration_reference_matches_the_loader():
    match = re.search(r"<!-- config-reference:start -->\n(.*?)\n<!-- config-reference:end -->",
                      README, re.DOTALL)
    assert match, "README.md lost its configuration reference markers"
    assert match.group(1) == render_reference(), (
        "README.md's configuration reference is stale: regenerate it with "
        "`python -m gateway.config.reference`"
    )


EXAMPLES = re.findall(r"```toml\n(.*?)```", README, re.DOTALL)


def test_readme_has_configuration_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_configuration_example_is_accepted(tmp_path: Path, number: int):
    text = EXAMPLES[number]
    for name in re.findall(r'"(/etc/gateway/[^"]+\.pem)"', text):
        stand_in = tmp_path / Path(name).name
        stand_in.write_text("certificate files are loaded at start, not by the loader")
        text = text.replace(name, str(stand_in))
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    settings = load_settings(config, env={})
    assert settings.listeners
