"""The user's repository, found by convention: the directory a command runs from when it holds
``configs/`` (or the parent of ``--config-dir``).

Its config groups go on Hydra's search path after sweeplab's own (``model=myarch`` next to
``model=cnn``), its directory on ``sys.path`` (the user's package imports), its outputs under
its ``logs/``, and the packages that ``configs/sweeplab.yaml`` declares (``trusted: [myarch]``)
join ``SWEEPLAB_TRUSTED``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from sweeplab import trust
from sweeplab.errors import ConfigError

__all__ = ["CONFIGS", "ROOT_ENV", "SETTINGS_FILE", "UserRepo", "enter", "find", "read_trusted"]

CONFIGS = "configs"
SETTINGS_FILE = "sweeplab.yaml"  # in the user's config directory: trusted: [package, ...]
ROOT_ENV = "SWEEPLAB_ROOT"  # paths.root_dir: where logs/ (and data/ by default) go


@dataclass(frozen=True)
class UserRepo:
    """A user's repository: its root (on ``sys.path``, holding ``logs/``), its config
    directory and the packages it trusts."""

    root: Path
    config_dir: Path
    trusted: tuple[str, ...]


def find(config_dir: str | None, cwd: Path) -> UserRepo | None:
    """The repository of ``--config-dir`` when given, else ``cwd`` when it holds ``configs/``;
    ``None`` when there is none (sweeplab's configs alone)."""
    if config_dir is not None:
        path = (cwd / config_dir).resolve()
        if not path.is_dir():
            raise ConfigError(
                f"--config-dir {config_dir} is not a directory: give your repository's config "
                f"directory (the one holding model/, hparams_search/, {SETTINGS_FILE})."
            )
        root = path.parent
    elif (cwd / CONFIGS).is_dir():
        path, root = (cwd / CONFIGS).resolve(), cwd.resolve()
    else:
        return None
    return UserRepo(root, path, read_trusted(path / SETTINGS_FILE))


def read_trusted(path: Path) -> tuple[str, ...]:
    """The module prefixes that ``path`` (a ``sweeplab.yaml``) lists under ``trusted``;
    none when the file does not exist."""
    if not path.is_file():
        return ()
    fix = "write it as `trusted: [mypackage, lab.models]` (module prefixes your configs name)"
    try:  # plain YAML, never resolved: it decides what configs may run
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({type(e).__name__}): {fix}.") from None
    trusted = settings.get("trusted", []) if isinstance(settings, dict) else None
    if not isinstance(trusted, list) or not all(isinstance(p, str) for p in trusted):
        raise ConfigError(f"{path} has `trusted`={trusted!r}, not a list of names: {fix}.")
    for prefix in trusted:
        trust.check_prefix(prefix, f"{path}'s `trusted`")
    return tuple(trusted)


def enter(repo: UserRepo) -> None:
    """Make ``repo`` this process's (and its workers') user repository: its package imports,
    its outputs go to its ``logs/``, its declared packages are trusted."""
    if str(repo.root) not in sys.path:
        sys.path.insert(0, str(repo.root))
    os.environ.setdefault(ROOT_ENV, str(repo.root))
    trust.trust_packages(repo.trusted)
