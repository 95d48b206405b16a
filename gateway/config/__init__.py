"""Configuration of ``gateway serve``: TOML file, ``GATEWAY_*`` environment, flags."""

from gateway.config.loader import ConfigError, load_settings
from gateway.config.model import Settings

__all__ = ("ConfigError", "Settings", "load_settings")
