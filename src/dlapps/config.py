"""What every area's configuration shares: one file format, one merge rule.

Each area keeps its settings in a dataclass in ``<area>/config.py`` with a class attribute
``kind`` (``"adapt"``, ``"transfer"``, ...). A run directory holds it as ``config.json`` with
that ``kind`` beside the fields; ``--config FILE`` reads one back, and the command's options
override it. :func:`merge` is the one function that does this for every area:

    cfg = merge(AdaptConfig, path_or_None, {"epochs": 3, "lr": None}, base=preset("fast"))

* a file written for another kind of run is refused with one line naming both kinds;
* a key the dataclass does not have is refused (a misspelt setting would otherwise be ignored);
* options that are None were not given and do not override;
* the result is validated (``config.validate()`` when the class has one).

:func:`check_run_dir` is the one rule for running a command again on its ``--out``: the folder
continues only the run whose settings it holds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from dlapps.errors import ConfigError
from dlapps.io import atomic_write_json

C = TypeVar("C")
KIND = "kind"


def config_dict(config: Any) -> dict[str, Any]:
    """The fields of a config dataclass, ``kind`` first (what ``config.json`` holds)."""
    return {KIND: type(config).kind, **asdict(config)}


def save_config(config: Any, path: Path) -> Path:
    return atomic_write_json(Path(path), config_dict(config))


def read_config_file(cls: type[C], path: Path) -> dict[str, Any]:
    """The fields of ``path`` for a ``cls`` config; refuses another kind's file and unknown keys."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration {path} is not a JSON object")
    kind = raw.pop(KIND, None)
    if kind is not None and kind != cls.kind:
        raise ConfigError(f"{path} is the configuration of a run of kind '{kind}', not '{cls.kind}'; "
                          f"give `dlapps {cls.kind}` a config.json written by `dlapps {cls.kind}`")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.kind} configuration key{'s' * (len(unknown) > 1)} in {path}: "
                          f"{', '.join(unknown)}")
    return raw


def merge(cls: type[C], path: Path | None, overrides: dict[str, Any], base: C | None = None) -> C:
    """``base`` (default: ``cls()``), then the file at ``path``, then the non-None ``overrides``;
    validated."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    config = base if base is not None else cls()
    if path is not None:
        config = replace(config, **read_config_file(cls, path))
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:  # a bug in a caller, not a user's mistake
        raise TypeError(f"{cls.__name__} has no fields {unknown}")
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    validate = getattr(config, "validate", None)
    return validate() if validate is not None else config


def load_config(cls: type[C], path: Path) -> C:
    """A config saved by :func:`save_config` (or by an older dlapps, without ``kind``)."""
    return merge(cls, path, {})


def check_run_dir(config: Any, run_dir: Path, ignore: tuple[str, ...] = ("device", "channels_last")) -> bool:
    """Whether ``run_dir`` already holds a run of ``config`` (then it continues); one line when it
    holds another kind's run or other settings. Fields in ``ignore`` may differ (where and how to
    run — the device, the memory format — not what to compute); keys the saved file lacks (an older
    dlapps) are not compared."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return False
    try:
        saved = read_config_file(type(config), path)
    except ConfigError as exc:
        raise ConfigError(f"{run_dir} holds another run: {exc}") from None
    mine = {k: v for k, v in asdict(config).items() if k not in ignore}
    differ = sorted(k for k, v in mine.items() if saved.get(k, v) != v)
    if differ:
        raise ConfigError(f"{run_dir} holds a run with other settings ({', '.join(differ)}); continue it "
                          f"with --config {path}, or give another --out")
    return True


def check_methods(methods: list[str], seeds: list[int], registry) -> None:
    """A run's method list names registered methods (did-you-mean otherwise), each once, and it
    has at least one method and one seed."""
    if not methods:
        raise ConfigError("give at least one method")
    for m in methods:
        registry.check(m)
    if len(set(methods)) != len(methods):
        raise ConfigError(f"a method is listed twice: {', '.join(methods)}")
    if not seeds:
        raise ConfigError("give at least one seed")


def check_method_options(method_options: Any, registry) -> None:
    """``method_options`` maps registered method names to settings each method declares in its
    ``options`` (a misspelt setting would otherwise be ignored without a word)."""
    if not isinstance(method_options, dict) or not all(isinstance(v, dict) for v in method_options.values()):
        raise ConfigError("method_options must map a method name to a dict of its settings")
    for section, given in method_options.items():
        declared = registry[section].options
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ConfigError(f"unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)} for "
                              f"method {section!r}; its settings: {', '.join(declared) or 'none'}")
