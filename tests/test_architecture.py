"""The shape of the house: no import runs upward, and every area has the same rooms.

Layers, bottom to top (a module imports only its own room and rooms of lower layers, function-
local imports included):

    0  dlapps (the package: __version__), errors
    1  io, registry, cli_support
    2  config, report (the page shell), models, engine
    3  data, runs
    4  the areas: adapt, transfer, explain, generate, semi, distill, ssl
    5  reports (dlapps report over any mix of runs)
    6  cli (mounts every area's sub-app), then __main__

Two sideways imports between areas are allowed and named: explain explains networks trained by
adapt, so it reads adapt's config; adapt's self-training is semi's pseudo-labelling applied to the
target domain (one implementation).
"""

from __future__ import annotations

import ast
from pathlib import Path

import dlapps

ROOT = Path(dlapps.__file__).parent
LAYERS = {
    "__init__": 0, "errors": 0,
    "io": 1, "registry": 1, "cli_support": 1,
    "config": 2, "report": 2, "models": 2, "engine": 2,
    "data": 3, "runs": 3,
    "adapt": 4, "transfer": 4, "explain": 4, "generate": 4, "semi": 4, "distill": 4, "ssl": 4,
    "reports": 5, "cli": 6, "__main__": 7,
}
AREAS = [room for room, layer in LAYERS.items() if layer == 4]
SIDEWAYS = {("explain", "adapt"), ("adapt", "semi")}
ROOMS = ("cli.py", "config.py", "experiment.py", "report.py")


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__version__":
        return "__init__"
    return parts[1]


def imports() -> list[tuple[str, str, str]]:
    """(file, importing room, imported room) for every ``dlapps`` import in the package."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            module_name = getattr(node, "module", None) or ""
            if isinstance(node, ast.ImportFrom) and node.level == 0 and module_name.startswith("dlapps"):
                targets = ([f"dlapps.{a.name}" for a in node.names] if node.module == "dlapps"
                           else [node.module])
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("dlapps")]
            else:
                continue
            found += [(str(rel), _room(module), _room(t)) for t in targets]
    return found


def test_every_room_has_a_layer():
    rooms = {_room(f"dlapps.{p.stem if p.is_file() else p.name}") for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert rooms <= set(LAYERS), sorted(rooms - set(LAYERS))


def test_no_import_runs_upward():
    upward = [f"{file}: {src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]})"
              for file, src, dst in imports()
              if src != dst and LAYERS[dst] >= LAYERS[src] and (src, dst) not in SIDEWAYS]
    assert upward == []


def test_the_checker_can_fail(tmp_path, monkeypatch):
    """A shared room importing an area is caught (the walk sees function-local imports too)."""
    bad = ROOT / "engine" / "_upward_probe.py"
    bad.write_text("def f():\n    from dlapps.adapt.config import AdaptConfig\n    return AdaptConfig\n")
    try:
        assert any(src == "engine" and dst == "adapt" for _, src, dst in imports())
    finally:
        bad.unlink()


def test_every_area_has_the_same_rooms():
    for area in AREAS:
        missing = [room for room in ROOMS if not (ROOT / area / room).is_file()]
        assert missing == [], f"{area} lacks {missing}"


def test_every_area_report_renders_a_run_and_a_section():
    import importlib

    for area in AREAS:
        report = importlib.import_module(f"dlapps.{area}.report")
        assert callable(report.render) and callable(report.section) and callable(report.title), area


def test_matplotlib_backend_is_set_in_one_place():
    setters = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "matplotlib.use(" in p.read_text()]
    assert setters == ["report/figures.py"]


def test_one_vocabulary_on_the_command_line():
    """Every command that trains takes --seeds, --out, -q/--quiet, --device and --config (and
    --workers where it has independent cells); every grid runner is called `compare`."""
    import click
    import typer

    from dlapps.cli import app

    root = typer.main.get_command(app)

    def command(path: str) -> click.Command:
        cmd = root
        for name in path.split():
            cmd = cmd.commands[name] if name in getattr(cmd, "commands", {}) else cmd
        return cmd

    def options(cmd: click.Command) -> set[str]:
        return {o for p in cmd.params for o in p.opts}

    common = {"--seeds", "--out", "--quiet", "-q", "--device", "--config"}
    trains = {"adapt": True, "adapt compare": True, "transfer": True, "transfer compare": True,
              "gan": True, "gan train": True, "gan compare": True, "explain classvis": False,
              "explain compare": False}
    for path, has_workers in trains.items():
        given = options(command(path))
        assert common <= given, f"dlapps {path} lacks {sorted(common - given)}"
        assert "--workers" in given or not has_workers, f"dlapps {path} lacks --workers"
    for area in ("adapt", "transfer", "gan", "explain"):
        assert "compare" in root.commands[area].commands, area
        assert not {"study", "sweep", "ablate"} & set(root.commands[area].commands), area


def test_seeds_mean_the_same_everywhere():
    from dlapps.cli_support import parse_seeds

    assert parse_seeds("0,1,2") == parse_seeds("0:3") == [0, 1, 2]
    assert parse_seeds("3") == [3]  # one seed, never a count
