"""What the `meter-oracle` and `settlement-node` command lines share: --version, the exit status 2
for a config that cannot be used, and creating or showing encrypted keystores."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from rust_core.keystore import keystore_info, write_keystore
from rust_core.settings import ConfigError

T = TypeVar("T")

def version_option(command):
    """--version from the installed package's metadata (a new option per command: click caches the name)."""
    return click.version_option(package_name="energy-settlement", message="%(prog)s %(version)s")(command)


class ConfigProblem(click.ClickException):
    """A config, keystore or key that cannot be used: the message, exit status 2 (as for bad usage)."""

    exit_code = 2


def config_option(help: str):
    return click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                        help=help)


def load_or_fail(load: Callable[[Path], T], path: Path) -> T:
    """A config loaded by `load`, or exit status 2 with its ConfigError (file, key, reason)."""
    try:
        return load(path)
    except ConfigError as e:
        raise ConfigProblem(str(e)) from None


keystore_argument = click.argument("keystore", type=click.Path(dir_okay=False, path_type=Path))
password_file_option = click.option(
    "--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the keystore password from this file (first line) instead of asking for it.")


def read_password(password_file: Path | None, *, confirm: bool) -> str:
    if password_file is not None:
        password = password_file.read_text().strip()
    else:
        password = click.prompt("Keystore password", hide_input=True, confirmation_prompt=confirm)
    if not password:
        raise ConfigProblem("an empty password would leave the key unprotected")
    return password


def create_keystore(path: Path, private_key: bytes | None, password: str, **labels: str) -> str:
    """Writes a new keystore (a fresh key when `private_key` is None); returns its address."""
    if path.exists():
        raise ConfigProblem(f"{path} exists: a keystore is never overwritten (a lost key cannot be recovered)")
    if not path.parent.is_dir():
        raise ConfigProblem(f"folder {path.parent} does not exist")
    return write_keystore(path, private_key or secrets.token_bytes(32), password, iterations=None, **labels)


def read_info(path: Path) -> dict:
    try:
        return keystore_info(path)
    except ValueError as e:
        raise ConfigProblem(str(e)) from None


def undocumented(command: click.Command, path: str = "") -> list[str]:
    """What a command tree leaves unexplained: a command without a help text, an option without
    its own help, an argument its command's help does not name (checked by the CLI tests)."""
    path = path or command.name or "?"
    missing = [] if command.help and len(command.help) > 30 else [f"{path}: no help text"]
    for param in command.params:
        if isinstance(param, click.Option) and not param.help:
            missing.append(f"{path} {param.opts[0]}: no help text")
        elif isinstance(param, click.Argument) and (param.name or "").upper() not in (command.help or ""):
            missing.append(f"{path}: argument {(param.name or '?').upper()} not described")
    for name, sub in getattr(command, "commands", {}).items():
        missing += undocumented(sub, f"{path} {name}")
    return missing
