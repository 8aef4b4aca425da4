"""Knowledge distillation experiments: the public :func:`run_distill` behind ``dlapps distill``.

One run compares, per seed, a teacher, the student trained from scratch and one distilled student
per kind of knowledge (response, feature, relation), all on the same data, labels and
augmentation. The teacher is trained here first (a network of :mod:`dlapps.models.nets`, its own
cell) or read from a finished run of any area (``--teacher RUN_DIR`` or a ``model.pt``).

A run directory looks like::

    runs/distill-20261123-101500/
      config.json          the DistillConfig (``--config`` reads it back)
      results.json         kind "distill": the table (teacher, scratch, each kind: test accuracy
                           mean ± std over seeds, parameters, images/s at inference, agreement with
                           the teacher), per-epoch curves, teacher source, T, α, ...
      report.html          table + curves (self-contained)
      figures/curves.png   test accuracy and agreement with the teacher against epochs, per kind
      model.pt             the first kind's distilled student of the first seed (``--teacher``
                           and ``load_classifier`` read a run directory through it)
      teacher-seed0/       a teacher trained in the run: checkpoint.pt, metrics.jsonl, TensorBoard
                           events, model.pt, final.json (written last: a cell with it is done)
      scratch-seed0/  response-seed0/  feature-seed0/  relation-seed0/    the same per student

Running again with the same ``--out`` resumes: finished cells are kept (their fingerprint
matches), an interrupted one continues from its last epoch's checkpoint. The cells of a stage (the
teachers, then the students) run in this process, in ``--workers`` processes of this machine, or as
Slurm jobs or Ray tasks (``--launcher``, :mod:`dlapps.engine.launchers`), with the same numbers
wherever they ran.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from dlapps.config import config_dict, save_config
from dlapps.data import Domain, load_domain
from dlapps.distill import report
from dlapps.distill.config import (
    DistillConfig,
    cell_fingerprint,
    is_teacher_path,
    teacher_fingerprint,
)
from dlapps.distill.kinds import KINDS, SCRATCH
from dlapps.distill.scratch import Scratch
from dlapps.engine.batches import Labelled, PairedBatches, batched, eval_mode, to_float
from dlapps.engine.device import resolve_device
from dlapps.engine.launchers import Launcher, get_launcher
from dlapps.engine.parallel import run_cells
from dlapps.engine.schedules import cosine
from dlapps.engine.seeding import seed_everything
from dlapps.engine.trainer import Trainer
from dlapps.errors import DataError
from dlapps.io import atomic_write_bytes, atomic_write_json
from dlapps.models.export import MODEL_FILE, find_model_file, load_classifier, save_classifier
from dlapps.models.nets import BUILDER, build_net, count_parameters
from dlapps.runs import write_results

KIND = "distill"
FINAL = "final.json"
TEACHER = "teacher"
EVAL_BATCH = 256


@dataclass
class CellJob:
    """One network to train (the teacher or one student of one seed): what a worker is given."""

    config: DistillConfig
    role: str  # "teacher" or a kind
    seed: int
    cell: Path
    data: Domain  # the run's data (a --limit subset of the training images)
    teacher_file: Path | None
    fingerprint: str
    progress: bool = False
    device: str = "cpu"


# --- data and teacher --------------------------------------------------------------------------


def load_teacher_file(teacher: str) -> tuple[Path, dict]:
    """The model file of ``--teacher RUN_DIR|model.pt`` and its description; one clear error when
    it is not a finished run that saved a classifier."""
    path = find_model_file(Path(teacher).expanduser())
    _, info = load_classifier(path)
    return path, info


def load_data(config: DistillConfig, teacher_info: dict | None = None) -> Domain:
    """The run's data at the teacher's input size and channels (a loaded teacher's, else the
    config's, else the data's own); refuses a teacher trained on other classes."""
    size = config.size or (teacher_info or {}).get("size")
    channels = config.channels or (teacher_info or {}).get("channels")
    domain = load_domain(config.data, size, channels)
    if len(domain.train_y) == 0 or len(domain.test_y) == 0:
        raise DataError(f"{config.data} needs training and test images")
    if domain.train_x.shape[-1] != domain.train_x.shape[-2]:
        raise DataError(f"{config.data}'s images are not square ({tuple(domain.train_x.shape[1:])}); "
                        "give --size")
    classes = list(domain.classes)
    if teacher_info is not None and list(teacher_info["classes"]) != classes:
        theirs = list(teacher_info["classes"])
        raise DataError(f"the teacher was trained on other classes ({len(theirs)}: {_short(theirs)}) than "
                        f"{config.data} has ({len(classes)}: {_short(classes)}); give a teacher of this data")
    keep = torch.arange(len(domain.train_y))
    if config.limit is not None and config.limit < len(keep):  # a fixed random subset (splits may be sorted)
        pick = torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))
        keep = pick[:config.limit].sort().values
    return replace(domain, name=config.data, train_x=domain.train_x[keep], train_y=domain.train_y[keep])


def _short(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# --- measuring -----------------------------------------------------------------------------------


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Class predictions (argmax of the logits) for uint8 or [0, 1] images, in eval mode."""
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    with eval_mode(net):
        return batched(net, x, device, batch).argmax(1)


@torch.no_grad()
def images_per_second(net: nn.Module, x: torch.Tensor, batch: int = EVAL_BATCH, min_seconds: float = 0.3,
                      repeats: int = 3) -> float:
    """Inference throughput on ``x`` in eval mode: the best of ``repeats`` timed passes (each at
    least ``min_seconds``), after one warm-up batch."""
    net.eval()
    x = to_float(x)
    net(x[:batch])
    best = 0.0
    for _ in range(repeats):
        n, began = 0, time.perf_counter()
        while True:
            for i in range(0, len(x), batch):
                net(x[i:i + batch])
            n += len(x)
            elapsed = time.perf_counter() - began
            if elapsed >= min_seconds:
                break
        best = max(best, n / elapsed)
    return best


# --- one cell ------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished(job: CellJob) -> dict | None:
    """What ``final.json`` holds if the cell finished with these settings (its fingerprint) and
    kept its ``model.pt``; else None."""
    done = _read_json(job.cell / FINAL)
    if done and done.get("fingerprint") == job.fingerprint and (job.cell / MODEL_FILE).is_file():
        return done
    return None


def train_cell(job: CellJob) -> dict:
    """Train one teacher or student (resuming from its checkpoint), save its ``model.pt`` and
    write ``final.json`` (last: a cell with it is done); returns what final.json holds."""
    done = _finished(job)
    if done:
        return done
    cfg, data = job.config, job.data
    c, size, _ = data.shape
    teacher = load_classifier(job.teacher_file)[0] if job.teacher_file is not None else None
    teacher_pred = None if teacher is None else predict(teacher, data.test_x)
    seed_everything(job.seed)  # after the teacher is built: every kind's student starts alike
    if job.role == TEACHER:
        name, epochs = cfg.teacher, cfg.teacher_epochs
        net = build_net(name, c, size, len(data.classes))
        module: nn.Module = Scratch(net, None, cfg, data.shape)
    else:
        name, epochs = cfg.student, cfg.epochs
        net = build_net(name, c, size, len(data.classes))
        cls = KINDS[job.role]
        module = cls(net, teacher if cls.uses_teacher else None, cfg, data.shape)

    def evaluate(m: nn.Module) -> dict:
        pred = predict(m.student, data.test_x)
        record = {"test_acc": float((pred == data.test_y).float().mean())}
        if teacher_pred is not None:
            record["agreement"] = float((pred == teacher_pred).float().mean())
        return record

    batches = PairedBatches(Labelled(data.train_x, data.train_y), None, cfg.batch_size, job.seed)
    optimizer = torch.optim.Adam(module.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    trainer = Trainer(module, batches, optimizer, cosine(cfg.lr), epochs, job.cell, evaluate=evaluate,
                      device=torch.device(job.device), channels_last=cfg.channels_last,
                      fingerprint=job.fingerprint, progress=job.progress, desc=job.cell.name)
    history = trainer.fit()
    net = module.student.cpu().eval()
    save_classifier(job.cell / MODEL_FILE, net, BUILDER, net.spec, data.classes, size=size, channels=c,
                    kind=KIND)
    last = history[-1]
    final = {"cell": job.cell.name, "role": job.role, "seed": job.seed, "net": name,
             "fingerprint": job.fingerprint, "epochs": epochs, "params": count_parameters(net),
             "test_acc": last["test_acc"], "agreement": last.get("agreement"),
             "train_seconds": last["seconds"],
             "history": [{k: r.get(k) for k in ("epoch", "test_acc", "agreement")} for r in history]}
    atomic_write_json(job.cell / FINAL, final)
    return final


# --- the run -------------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def _curves(finals: list[dict]) -> dict:
    """Per epoch, the mean over seeds of test accuracy and agreement with the teacher."""
    n = min(len(f["history"]) for f in finals)
    curve = {"epoch": [finals[0]["history"][i]["epoch"] for i in range(n)]}
    for key in ("test_acc", "agreement"):
        if all(f["history"][i].get(key) is not None for f in finals for i in range(n)):
            curve[key] = [statistics.fmean(f["history"][i][key] for f in finals) for i in range(n)]
    return curve


def _run_cells(jobs: list[CellJob], workers: int | None, device: torch.device, progress: bool,
               launcher: Launcher) -> list[dict]:
    """Every job's final.json, in order: read back where a cell finished with these settings (under
    any launcher), else trained through ``launcher`` (local: ``workers`` processes on a CPU, one on a
    GPU). A final.json of other settings (another fingerprint) or without its model.pt does not count."""
    by_cell = {(j.role, j.seed): j for j in jobs}

    def final_file(c: tuple[str, int]) -> Path | None:
        return by_cell[c].cell / FINAL if _finished(by_cell[c]) else None

    finals, _ = run_cells(train_cell, list(by_cell), final_file,
                          lambda c, bar: (replace(by_cell[c], progress=bar),),
                          workers if device.type == "cpu" else 1, progress, launcher)
    return finals


def run_distill(config: DistillConfig | None = None, out: Path | None = None, *, progress: bool = True,
                workers: int | None = None, device: torch.device | str | None = None,
                launcher: Launcher | str | None = None) -> dict:
    """Train (or read) the teacher, the student from scratch and one distilled student per kind
    for every seed of ``config``; write results.json, the model files, figures and report.html
    into ``out`` (default ``runs/distill-<time>``; running again continues it); the results.

    ``workers`` cells train at once in their own processes (None: one per CPU core; one on a
    GPU); ``launcher`` sends them to a Slurm or Ray cluster instead (:mod:`dlapps.engine.launchers`).
    ``device`` (default: the config's) is where the cells train."""
    from dlapps.cli_support import default_run_dir

    cfg = (config or DistillConfig()).validate()
    began = time.perf_counter()
    out = Path(out) if out is not None else default_run_dir(KIND)
    launcher = get_launcher(launcher).within(out)
    device = device if isinstance(device, torch.device) else resolve_device(device or cfg.device)
    from_file = is_teacher_path(cfg.teacher)
    teacher_file, teacher_info = load_teacher_file(cfg.teacher) if from_file else (None, None)
    data = load_data(cfg, teacher_info)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    seeds = list(dict.fromkeys(cfg.seeds))
    dev = str(device)

    teacher_files: dict[int, Path] = {}
    teacher_ids: dict[int, str] = {}
    teacher_finals: dict[int, dict] = {}
    if from_file:
        file_id = _file_hash(teacher_file)
        teacher_files = dict.fromkeys(seeds, teacher_file)
        teacher_ids = dict.fromkeys(seeds, file_id)
    else:
        jobs = [CellJob(cfg, TEACHER, s, out / f"{TEACHER}-seed{s}", data, None, teacher_fingerprint(cfg, s),
                        device=dev) for s in seeds]
        for job, final in zip(jobs, _run_cells(jobs, workers, device, progress, launcher), strict=True):
            teacher_files[job.seed], teacher_ids[job.seed] = job.cell / MODEL_FILE, final["fingerprint"]
            teacher_finals[job.seed] = final

    students = cfg.students()
    jobs = [CellJob(cfg, kind, s, out / f"{kind}-seed{s}", data, teacher_files[s],
                    cell_fingerprint(cfg, kind, s, teacher_ids[s]), device=dev)
            for s in seeds for kind in students]
    finals = dict(zip([(j.role, j.seed) for j in jobs],
                      _run_cells(jobs, workers, device, progress, launcher), strict=True))

    # --- the table: every network read back from its model.pt and measured here, in one process
    rows: dict[str, dict] = {}
    per_seed: dict[str, dict] = {}
    measured: dict[str, list] = {TEACHER: []}
    teachers: dict[Path, tuple[torch.Tensor, dict]] = {}  # a loaded teacher serves every seed: once
    for s in seeds:
        if teacher_files[s] not in teachers:
            teacher, _ = load_classifier(teacher_files[s])
            t_pred = predict(teacher, data.test_x)
            teachers[teacher_files[s]] = (t_pred, {
                "test_acc": float((t_pred == data.test_y).float().mean()), "agreement": 1.0,
                "images_per_s": images_per_second(teacher, data.test_x), "params": count_parameters(teacher)})
        t_pred, t_row = teachers[teacher_files[s]]
        measured[TEACHER].append(t_row)
        for kind in students:
            net, _ = load_classifier(out / f"{kind}-seed{s}" / MODEL_FILE)
            pred = predict(net, data.test_x)
            measured.setdefault(kind, []).append({
                "test_acc": float((pred == data.test_y).float().mean()),
                "agreement": float((pred == t_pred).float().mean()),
                "images_per_s": images_per_second(net, data.test_x), "params": count_parameters(net)})
    for name, cells in measured.items():
        rows[name] = {"test_acc": _stats([c["test_acc"] for c in cells]),
                      "agreement": _stats([c["agreement"] for c in cells]),
                      "images_per_s": _stats([c["images_per_s"] for c in cells]),
                      "params": cells[0]["params"]}
        per_seed[name] = {f"seed{s}": {k: c[k] for k in ("test_acc", "agreement", "images_per_s")}
                          for s, c in zip(seeds, cells, strict=True)}
    curves = {kind: _curves([finals[kind, s] for s in seeds]) for kind in students}
    if teacher_finals:
        curves[TEACHER] = _curves([teacher_finals[s] for s in seeds])
    scratch_acc = rows[SCRATCH]["test_acc"]["mean"]
    source = (f"trained in this run: {cfg.teacher}, {cfg.teacher_epochs} epochs" if not from_file
              else f"{teacher_file} ({teacher_info['kind'] or 'dlapps'} run, "
                   f"{teacher_info['builder']} network)")
    results = {
        "title": f"dlapps distill: {cfg.teacher if not from_file else 'loaded teacher'} -> {cfg.student} "
                 f"on {data.name}",
        "data": {"name": data.name, "train": len(data.train_y), "test": len(data.test_y),
                 "shape": list(data.shape), "classes": len(data.classes)},
        "teacher": {"source": source, "trained_here": not from_file,
                    "net": cfg.teacher if not from_file else teacher_info["kwargs"].get("name",
                                                                                       teacher_info["builder"]),
                    "params": rows[TEACHER]["params"], "epochs": None if from_file else cfg.teacher_epochs},
        "student": cfg.student, "kinds": students, "T": cfg.T, "alpha": cfg.alpha,
        "hint_weight": cfg.hint_weight, "rkd_distance": cfg.rkd_distance, "rkd_angle": cfg.rkd_angle,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "shift": cfg.shift, "seeds": seeds,
        "rows": rows, "per_seed": per_seed, "curves": curves,
        "beats_scratch": {k: rows[k]["test_acc"]["mean"] > scratch_acc for k in students if k != SCRATCH},
        "models": {**({} if from_file else {f"{TEACHER}-seed{s}": f"{TEACHER}-seed{s}/{MODEL_FILE}"
                                           for s in seeds}),
                   **{f"{k}-seed{s}": f"{k}-seed{s}/{MODEL_FILE}" for s in seeds for k in students}},
        "device": dev, "wall_seconds": round(time.perf_counter() - began, 1),
    }
    first = next((k for k in students if k != SCRATCH), SCRATCH)
    atomic_write_bytes(out / MODEL_FILE, (out / f"{first}-seed{seeds[0]}" / MODEL_FILE).read_bytes())
    results["model"] = f"{first}-seed{seeds[0]}"
    report.curves_figure(results, out / "figures" / "curves.png")
    results = write_results(out, KIND, config_dict(cfg), results)
    report.render(out)
    return results
