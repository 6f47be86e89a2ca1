"""Found architectures as files a user takes away: JSON, ONNX, a torch.export program, a standalone PyTorch source
file, or a state dict; each checked right after it is written.

- ``json``: the genotype, its costs, the trial's measurements and proxy scores, the trained accuracy where there is
  one, and where it came from; ``resolve_arch`` reads it back.
- ``onnx``: opset ``ONNX_OPSET``, a dynamic batch axis; run in onnxruntime against PyTorch on random input at
  another batch size than it was traced with; more than ``ONNX_TOLERANCE`` of the largest output apart and the file
  is removed (so is any file that fails its check). Fresh weights give outputs near zero, which would hide any
  error: the conversion is then also checked on a copy with randomised weights.
- ``pt2``: ``torch.export`` with a dynamic batch dimension, saved with ``torch.export.save``; loaded back with
  ``torch.export.load`` and run against the model.
- ``py``: ``standalone.standalone_source``; imported and run against the model (same weights) in this process.
- ``state-dict``: the weights, with the genotype, under ``state_dict`` (``build_model(arch, weights=...)``).

The weights are the study's trained ones where ``train`` left some for the architecture (exported as trained: at
the data's resolution and classes), else freshly initialised (seed 0).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from shufflenet_nas import __version__
from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.results.rows import TrialRow, trained_records
from shufflenet_nas.results.standalone import standalone_source
from shufflenet_nas.search_spaces import Genotype, build_model, resolve_arch

FORMATS = ("json", "onnx", "pt2", "py", "state-dict")
SUFFIXES = {"json": ".json", "onnx": ".onnx", "pt2": ".pt2", "py": ".py", "state-dict": ".pt"}
ONNX_OPSET = 17
ONNX_TOLERANCE = 1e-4  # of the largest output (at least 1): onnxruntime fuses and reorders arithmetic
PT2_TOLERANCE = 1e-5  # the same kernels: only the graph capture could differ
CHECK_BATCH = 3  # the checks run at a batch size the exports were not traced with
EXPORT_FORMAT = "shufflenet-nas architecture 1"


@dataclass(frozen=True)
class ExportItem:
    """One architecture to export: its genotype, its weights file (None: fresh weights), what to say about it."""

    genotype: Genotype
    label: str  # "trial 12", "shufflenet_v2_x1_0", or the arch id
    weights: Path | None = None
    trial: dict[str, Any] | None = None  # the trial's measurements and scores, from a study
    accuracy: dict[str, Any] | None = None  # what `train` recorded
    provenance: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # the file name's stem: the study's arch id (trained weights change the genotype's)

    @property
    def stem(self) -> str:
        return self.name or self.genotype.arch_id


@dataclass(frozen=True)
class Exported:
    """A written file and the check it passed."""

    path: Path
    format: str
    arch_id: str
    genotype: str
    weights: str  # "trained (<path>)" or "fresh (seed 0)"
    check: str  # what was checked, in words
    max_abs_diff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def export(item: ExportItem, fmt: str, path: Path) -> Exported:
    """Write ``item`` as ``fmt`` to ``path`` and check it (see the module docstring); a file that fails its check
    is removed."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"fmt={fmt!r} is not one of {', '.join(FORMATS)}")
    sources = [item.weights, item.provenance.get("source")]
    if any(
        source and Path(str(source)).is_file() and Path(str(source)).resolve() == path.resolve() for source in sources
    ):
        raise InvalidArgumentError(f"path={str(path)!r} is the file exported from; write elsewhere")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(f"path={str(path)!r}: cannot create its folder ({error.strerror})") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(item.genotype, weights=item.weights).eval()
    weights = f"trained ({item.weights})" if item.weights else "fresh (seed 0)"
    genotype = item.genotype
    base = {"path": path, "format": fmt, "arch_id": genotype.arch_id, "genotype": genotype.to_string()}
    try:
        if fmt == "json":
            path.write_text(json.dumps(_description(item, weights), indent=2) + "\n")
            if resolve_arch(str(path)) != genotype:
                raise ShuffleNetNASError(f"{path}: resolve_arch reads another genotype back")
            return Exported(**base, weights=weights, check="resolve_arch reads the same genotype back")
        if fmt == "state-dict":
            torch.save({"genotype": genotype.to_string(), "state_dict": model.state_dict()}, path)
            loaded = build_model(resolve_arch(str(path)), weights=path).state_dict()
            if any(not torch.equal(tensor, loaded[key]) for key, tensor in model.state_dict().items()):
                raise ShuffleNetNASError(f"{path}: the weights do not load back as written")
            check = "build_model(resolve_arch(path), weights=path) loads every tensor back equal"
            return Exported(**base, weights=weights, check=check)
        difference, scale = _convert_and_check(fmt, model, genotype, path)
        if item.weights is None:  # fresh weights give outputs near 0: check the conversion on randomised ones too
            probe = path.with_name(f".probe-{path.name}")
            try:
                difference, scale = _convert_and_check(fmt, _randomised(model), genotype, probe)
            finally:
                probe.unlink(missing_ok=True)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise ShuffleNetNASError(f"cannot write {path}: {error.strerror}; pick another `path`") from None
    except ShuffleNetNASError:
        path.unlink(missing_ok=True)
        raise
    checked_on = "randomised weights (the file's are fresh)" if item.weights is None else "the file's weights"
    check = f"{_CHECKS[fmt]}, on {checked_on}: max |diff| {difference:.2e} with outputs up to {scale:.2g}"
    return Exported(**base, weights=weights, check=check, max_abs_diff=difference)


_CHECKS = {
    "onnx": f"onnxruntime vs PyTorch at batch {CHECK_BATCH}, opset {ONNX_OPSET}, dynamic batch axis",
    "pt2": f"torch.export.load and run vs the model at batch {CHECK_BATCH}, dynamic batch dimension",
    "py": "imported (torch only) and run vs the model, same weights",
}


def _convert_and_check(fmt: str, model: nn.Module, genotype: Genotype, path: Path) -> tuple[float, float]:
    """Write ``model`` as ``fmt`` and run it against the model: the largest output difference and output."""
    inputs = torch.randn(CHECK_BATCH, 3, genotype.resolution, genotype.resolution, generator=_generator())
    with torch.no_grad():
        expected = model(inputs)
    convert = {"onnx": _onnx, "pt2": _pt2, "py": _standalone}[fmt]
    difference = convert(model, genotype, path, inputs, expected)
    return difference, float(expected.abs().max())


def _randomised(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every weight and BatchNorm statistic drawn at random (seeded): outputs of order 1
    or more, which a conversion error cannot hide in."""
    probe = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, tensor in probe.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(values + 0.5 if "running_var" in key else 2 * values - 1)
    return probe


def _tolerance(expected: torch.Tensor, relative: float) -> float:
    """``relative`` of the largest output, and at least ``relative`` itself."""
    return relative * max(1.0, float(expected.abs().max()))


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _description(item: ExportItem, weights: str) -> dict[str, Any]:
    genotype = item.genotype
    return {
        "format": EXPORT_FORMAT,
        "arch_id": genotype.arch_id,
        "genotype": genotype.to_string(),
        "family": genotype.family,
        "architecture": json.loads(genotype.to_json()),
        "cost": count_cost(genotype).to_dict(),
        "weights": weights,
        "trial": item.trial,
        "accuracy": item.accuracy,
        "provenance": {
            "label": item.label,
            "exported_by": f"shufflenet-nas {__version__}",
            "torch": torch.__version__,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **item.provenance,
        },
    }


def _max_difference(output: torch.Tensor, expected: torch.Tensor) -> float:
    return float((output.float() - expected.float()).abs().max())


def _onnx(model: nn.Module, genotype: Genotype, path: Path, inputs: torch.Tensor, expected: torch.Tensor) -> float:
    import onnxruntime as ort

    traced = inputs[:1]  # traced at batch 1, checked at CHECK_BATCH: the batch axis must be dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (traced,),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"x": inputs.numpy()})
    difference = _max_difference(torch.from_numpy(output), expected)
    if not difference <= _tolerance(expected, ONNX_TOLERANCE):
        raise ShuffleNetNASError(
            f"{genotype.arch_id}: onnxruntime's output differs from PyTorch's by {difference:.2e} (more than "
            f"{ONNX_TOLERANCE:g} of the largest output); the ONNX file was not kept"
        )
    return difference


def _pt2(model: nn.Module, genotype: Genotype, path: Path, inputs: torch.Tensor, expected: torch.Tensor) -> float:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (inputs[:2],), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        difference = _max_difference(loaded(inputs), expected)
    if not difference <= _tolerance(expected, PT2_TOLERANCE):
        raise ShuffleNetNASError(f"{genotype.arch_id}: the exported program's output differs by {difference:.2e}")
    return difference


def _standalone(
    model: nn.Module, genotype: Genotype, path: Path, inputs: torch.Tensor, expected: torch.Tensor
) -> float:
    source = standalone_source(genotype)
    if "shufflenet_nas" in source:
        raise ShuffleNetNASError(f"{genotype.arch_id}: the standalone source mentions shufflenet_nas")
    path.write_text(source)
    name = f"_shufflenet_export_{genotype.arch_id}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        standalone = module.ShuffleNet().eval()
        standalone.load_state_dict(model.state_dict())
        with torch.no_grad():
            difference = _max_difference(standalone(inputs), expected)
    finally:
        del sys.modules[name]
    if difference != 0:  # the same code on the same weights: nothing may differ (NaN != 0 too)
        raise ShuffleNetNASError(f"{genotype.arch_id}: the standalone file's output differs by {difference:.2e}")
    return difference


def study_items(study: optuna.Study, study_dir: Path | None, rows: list[TrialRow]) -> list[ExportItem]:
    """What to export of ``rows`` of a study: each with its trial's figures, its trained weights and accuracy
    where `train` left them in ``study_dir`` (a study in a database server: weights at their recorded path); a
    recorded weights file that is gone is warned of, and the architecture goes with fresh weights."""
    trained = trained_records(study)
    trials = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    items = []
    for row in rows:
        record = trained.get(row.arch_id)
        weights = (study_dir or Path()) / str(record["weights"]) if record and record.get("weights") else None
        if weights is not None and not weights.is_file():
            warnings.warn(
                f"{row.arch_id}: `train` recorded weights at {weights}, which is no file now; exporting it with "
                "fresh weights (train it again, or export from the folder the weights are in)",
                RuntimeWarning,
                stacklevel=2,
            )
            weights = None
        genotype = Genotype.from_string(record["trained_genotype"] if weights and record else row.genotype)
        attrs = trials[row.number].user_attrs if row.number in trials else {}
        where = {"study_dir": str(study_dir)} if study_dir is not None else {}
        provenance = {"study": study.study_name, **where, "trial": row.number}
        items.append(
            ExportItem(
                genotype,
                row.baseline or f"trial {row.number}",
                weights,
                trial={key: attrs[key] for key in _TRIAL_KEYS if key in attrs},
                accuracy=record,
                provenance=provenance | {"baseline": row.baseline} if row.baseline else provenance,
                name=row.arch_id,
            )
        )
    return items


_TRIAL_KEYS = ("baseline", "family", "mflops", "params", "latency_ms", "latency", "proxy", "proxies", "feasible")
