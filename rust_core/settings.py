"""TOML config files as pydantic-settings models, shared by the oracle and the node configs.

What every config gets from here: unknown keys and wrong types refused in one `ConfigError`
naming the file, the key path (`devices[2].interval_s`) and the reason; environment variables
(the model's `env_prefix`, `__` between nested keys) override the file; relative paths
(`ConfigPath`) are relative to the config file, not to the working directory.
"""
from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import AfterValidator, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError


class ConfigError(ValueError):
    """A config that cannot be used as written; the message names file, key and reason."""


def error_path(loc: tuple) -> str:
    """("devices", 2, "interval_s") -> "devices[2].interval_s" (pydantic's error locations)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe(error: ValidationError, source: str, env_prefix: str = "") -> str:
    """A ValidationError as one `source: key.path: reason` line per error (no traceback, no
    pydantic boilerplate); an error in a value that came from the environment names the variable."""
    import os

    lines = []
    for e in error.errors(include_url=False):
        reason = e["msg"]
        if e["type"] == "extra_forbidden":
            reason = "unknown key (a typo?)"
        elif e["type"] == "value_error":
            reason = str(e["ctx"]["error"])
        elif not isinstance(e.get("input"), dict | list) and e["type"] != "missing":
            reason += f" (got {e['input']!r:.60})"
        where = source
        if env_prefix and e["loc"] and isinstance(e["loc"][0], str):
            var = (env_prefix + e["loc"][0]).upper()
            if var in {k.upper() for k in os.environ}:
                where = f"environment variable {var}"
        lines.append(f"{where}: {error_path(e['loc'])}: {reason}")
    return "\n".join(lines)


_config_dir: ContextVar[Path] = ContextVar("config_dir", default=Path("."))


def relative_to_config(path: Path) -> Path:
    return path if path.is_absolute() else _config_dir.get() / path


ConfigPath = Annotated[Path, AfterValidator(relative_to_config)]


class TomlSettings(BaseSettings):
    """Base of the config files: strict keys, and the environment above the file."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # the first wins: environment over file (no dotenv, no secrets dir)


S = TypeVar("S", bound=TomlSettings)


def load_settings(cls: type[S], path: str | Path) -> S:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    token = _config_dir.set(path.parent)
    try:
        return cls(**raw)
    except ValidationError as e:
        raise ConfigError(describe(e, str(path), cls.model_config.get("env_prefix", ""))) from None
    except SettingsError as e:  # an environment variable that is not the JSON its key needs
        raise ConfigError(f"{path}: {e} (lists and tables from the environment are JSON)") from None
    finally:
        _config_dir.reset(token)
