"""What the commands share: option types and their choices, the measurement options, ARCH and budget parsing.

This module is light on purpose: ``--help``, ``--version``, ``space`` and ``baselines`` import it and the
command modules, never torch, optuna, fvcore, scipy or onnx. Commands import the library modules they need
when they run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    import optuna

    from shufflenet_nas.nas.latency import MeasureConfig
    from shufflenet_nas.results.selection import Selection
    from shufflenet_nas.search_spaces import Genotype, SearchSpace

from shufflenet_nas.cli.errors import FLAGS, UsageError, parameters_of


# ---- choices ----------------------------------------------------------------------------------------------
class Choice(StrEnum):
    """The values an option takes; a member is its value to the library (``Target.gpu.value == "gpu"``).

    ``Choice("Target", "cpu gpu")`` makes the choices ``Target.cpu`` and ``Target.gpu``."""

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[Any]) -> str:
        return name

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


Target = Choice("Target", "cpu gpu onnxruntime")
Runtime = Choice("Runtime", "eager cudagraph onnxruntime")
Dtype = Choice("Dtype", "fp32 bf16 fp16")
Family = Choice("Family", "v1 v2 mixed")
Sampler = Choice("Sampler", "tpe nsga2 random")
Objective = Choice("Objective", "pareto latency reward")
LatencyMode = Choice("LatencyMode", "measured lut")
# The library's proxies in its order (nas.proxies.PROXY_NAMES; a test keeps the two equal).
Proxy = Choice("Proxy", "synflow naswot naswot_diversity relu_count grad_norm snip jacob_cov params mflops train")
DEFAULT_PROXY = Proxy.params  # nas.proxies.DEFAULT_PROXY
DEFAULT_PROXY_BATCH_SIZE = 8  # nas.proxies.DEFAULT_BATCH_SIZE

C = TypeVar("C", bound=Choice)


def choice_option(choices: type[C], flag: str, help: str, *, optional: bool = False, **option: Any) -> Any:
    """An option that takes one of ``choices`` (in any case; ``optional``: or is left out, None); another
    value is a one-line usage error."""

    def parse(text: str | C) -> C:
        if isinstance(text, choices):
            return text
        try:
            return choices(str(text).lower())
        except ValueError:
            raise UsageError(f"{flag} {text!r} unknown; use one of {', '.join(choices)}") from None

    metavar = f"[{'|'.join(choices)}]"
    kind = choices | None if optional else choices
    return Annotated[kind, typer.Option(flag, parser=parse, metavar=metavar, help=help, **option)]


# ---- options and arguments several commands take ----------------------------------------------------------
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ArchArgument = Annotated[
    str,
    typer.Argument(help="A baseline name (see `baselines`), a genotype string (stem24s4-v2_...) or a JSON file."),
]
SpaceBudgetOption = Annotated[
    str, typer.Option("--budget", help="FLOPs budget the width ranges are sized for, e.g. 146MFLOPs.")
]


def arch_from_argument(arch: str, resolution: int | None = None) -> Genotype:
    """Resolve ARCH; a bad value is a usage error naming the accepted forms."""
    from shufflenet_nas.search_spaces import resolve_arch

    try:
        genotype = resolve_arch(arch)
    except ValueError as error:
        message = str(error).replace("the keys of BASELINES", "listed by `shufflenet-nas baselines`")
        raise UsageError(f"ARCH: {message}") from None
    try:
        return genotype.with_resolution(resolution) if resolution else genotype
    except ValueError as error:
        raise UsageError(f"--resolution: {error}") from None


def space_from_options(budget: str, resolution: int) -> SearchSpace:
    """The search space of the --budget and --resolution options; a value out of range is a usage error."""
    from shufflenet_nas.search_spaces import SearchSpace
    from shufflenet_nas.units import parse_flops

    return SearchSpace(budget_mflops=parse_flops(budget) / 1e6, resolution=resolution)


def output_path(path: Path, what: str) -> Path:
    """Create the parent folder of an output file; a path that cannot be written is a usage error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the folder for {what} {path}: {error.strerror}; pick another path") from None
    return path


# ---- the measurement options -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasureOptions:
    """The measurement options of a command (``--target`` ... ``--isolate``) as one value."""

    target: Target = Target.cpu
    runtime: Runtime | None = None
    dtype: Dtype = Dtype.fp32
    batch: int = 1
    threads: int | None = None
    normalize: bool | None = None
    isolate: bool = False
    max_time: float = 10.0
    precision: float = 0.005

    def config(self) -> MeasureConfig:
        """The options as a checked ``MeasureConfig``: a bad value raises ``InvalidArgumentError``, a missing
        device ``DeviceUnavailableError``."""
        from shufflenet_nas.nas.latency import MeasureConfig, check_target

        config = MeasureConfig(
            target=self.target.value,
            batch=self.batch,
            dtype=self.dtype.value,
            threads=self.threads,
            runtime=self.runtime.value if self.runtime else None,
            max_time_s=self.max_time,
            rel_precision=self.precision,
            normalize=self.normalize,
            isolate=self.isolate,
        )
        check_target(config)
        return config


_MEASUREMENT = "Measurement"  # the help panel of these options
_MEASURE_OPTIONS: dict[str, Any] = {
    "target": choice_option(
        Target,
        "--target",
        "cpu (PyTorch eager), gpu (CUDA) or onnxruntime (its CPU provider).",
        rich_help_panel=_MEASUREMENT,
    ),
    "runtime": choice_option(
        Runtime,
        "--runtime",
        "gpu: cudagraph (graph replay, stable; the default) or eager (launch-bound at small batches). "
        "cpu: eager. onnxruntime: onnxruntime.",
        optional=True,
        rich_help_panel=_MEASUREMENT,
    ),
    "dtype": choice_option(Dtype, "--dtype", "fp32; bf16 on cpu and gpu; fp16 on gpu.", rich_help_panel=_MEASUREMENT),
    "batch": Annotated[int, typer.Option("--batch", help="Batch size.", rich_help_panel=_MEASUREMENT)],
    "threads": Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads, set explicitly (default 1: the V2 paper's ARM protocol, steadiest).",
            rich_help_panel=_MEASUREMENT,
        ),
    ],
    "max_time": Annotated[
        float,
        typer.Option("--max-time", help="Time cap per measurement, in seconds.", rich_help_panel=_MEASUREMENT),
    ],
    "precision": Annotated[
        float,
        typer.Option(
            "--precision",
            help="Stop once the median's 95% confidence half-width is within this fraction.",
            rich_help_panel=_MEASUREMENT,
        ),
    ],
    "normalize": Annotated[
        bool | None,
        typer.Option(
            "--normalize/--raw",
            help="Scale runs to the speed anchor of a reference network timed between them, so a shared host's "
            "speed swings cancel (default on cpu and onnxruntime), or report raw times (default on gpu).",
            show_default=False,
            rich_help_panel=_MEASUREMENT,
        ),
    ],
    "isolate": Annotated[
        bool,
        typer.Option(
            "--isolate",
            help="Measure in a child process, so a CUDA OOM or error cannot poison what follows.",
            rich_help_panel=_MEASUREMENT,
        ),
    ],
}
Command = TypeVar("Command", bound=Callable[..., Any])


def option_group(parameter: str, group: type, options: dict[str, Any], **defaults: Any) -> Callable[[Command], Command]:
    """Give a command the ``options`` (name -> ``Annotated`` option type, each a field of the dataclass
    ``group``), with the defaults of ``group(**defaults)`` (which also fix the fields that are no option). The
    command declares a parameter named
    ``parameter`` and receives the options in it as one ``group``; Typer sees them in the command's
    signature (``__signature__``) as ordinary options."""
    default = group(**defaults)

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        if parameter not in signature.parameters:
            raise TypeError(f"{command.__name__} needs a parameter `{parameter}: {group.__name__}`")
        own = [p for p in signature.parameters.values() if p.name != parameter]
        kind = inspect.Parameter.KEYWORD_ONLY
        added = [inspect.Parameter(n, kind, default=getattr(default, n), annotation=t) for n, t in options.items()]

        @functools.wraps(command)
        def with_options(**arguments: Any) -> Any:
            grouped = replace(default, **{name: arguments.pop(name) for name in options})  # the rest: ``defaults``
            return command(**arguments, **{parameter: grouped})

        parameters = [*own, *added]
        with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_options  # type: ignore[return-value]

    return decorate


_SELECTION = "What to take from a study"
_SELECTION_OPTIONS: dict[str, Any] = {
    "pareto": Annotated[
        bool, typer.Option("--pareto", help="The study's Pareto front (latency vs proxy).", rich_help_panel=_SELECTION)
    ],
    "best_v1": Annotated[
        bool, typer.Option("--best-v1", help="The study's best V1-style.", rich_help_panel=_SELECTION)
    ],
    "best_v2": Annotated[
        bool, typer.Option("--best-v2", help="The study's best V2-style.", rich_help_panel=_SELECTION)
    ],
    "trials": Annotated[
        list[int], typer.Option("--trial", help="This trial (repeatable).", rich_help_panel=_SELECTION)
    ],
    "baselines": Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines", help="Also the paper models the study evaluated.", rich_help_panel=_SELECTION
        ),
    ],
}


def selection_options(*, baselines: bool) -> Callable[[Command], Command]:
    """Give a command the options that pick from a study (``--pareto`` ... ``--trial``; ``--baselines`` where
    ``baselines``, else none are taken) as one ``results.selection.Selection`` in its parameter ``selection``."""
    from shufflenet_nas.results.selection import Selection

    options = {name: kind for name, kind in _SELECTION_OPTIONS.items() if baselines or name != "baselines"}
    return option_group("selection", Selection, options, baselines=baselines)


def open_study(study_dir: Path | None, storage: str | None, study_name: str | None) -> optuna.Study:
    """The study of a results/<study> directory, or of ``--storage URL`` with ``--study NAME`` (one of the two),
    opened read-only."""
    from shufflenet_nas.results import load_study

    if study_dir is not None and storage is not None:
        raise UsageError("give a results/<study> directory or --storage URL with --study NAME, not both")
    if study_dir is None and storage is None:
        raise UsageError("give a results/<study> directory, or --storage URL with --study NAME")
    if storage is None and study_name is not None:
        raise UsageError(f"--study {study_name} names a study in --storage; a results/<study> directory holds one")
    if storage is None:
        with parameters_of("study_dir"):  # the library's `study` is the directory argument here
            return load_study(study_dir)
    return load_study(study_name, storage)


def only_from_a_study(selection: Selection, source: str) -> None:
    """A usage error where ``selection`` picks something but SOURCE is an architecture, not a study."""
    picked = selection.picked()
    if picked:
        raise UsageError(f"{FLAGS[picked[0]].name} picks from a study; SOURCE {source} is an architecture")


def measure_options(*, max_time: float, precision: float, isolate: bool = True) -> Callable[[Command], Command]:
    """Give a command the measurement options (with these defaults; ``--isolate`` unless ``isolate=False``)
    as one ``MeasureOptions`` in its parameter ``measure``."""
    options = {name: kind for name, kind in _MEASURE_OPTIONS.items() if isolate or name != "isolate"}
    return option_group("measure", MeasureOptions, options, max_time=max_time, precision=precision)
