"""What the commands share (cli/common.py): the library's parameters spelled as flags, exit codes by error
class, choices that match the library's, the option groups, progress."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import signal
from collections.abc import Callable
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from shufflenet_nas import DeviceUnavailableError, InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.cli import common
from shufflenet_nas.cli import errors as cli_errors
from shufflenet_nas.cli import progress as progress_module
from shufflenet_nas.cli.app import app
from shufflenet_nas.cli.common import Dtype, MeasureOptions, Runtime, Target
from shufflenet_nas.cli.errors import FLAGS, ErrorHandlingGroup, UsageError, as_flags

runner = CliRunner()


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "dtype='fp16' is not supported with target='cpu'; use dtype='fp32'",
            "--dtype fp16 is not supported with --target cpu; use --dtype fp32",
        ),
        ("`data` is needed for proxy 'train'", "--data is needed for proxy 'train'"),
        ("max_time_s=0.02 (now 0.5)", "--max-time 0.02 (now 0.5)"),
        ("rel_precision=1.5: need a fraction", "--precision 1.5: need a fraction"),
        ("latency_mode='lut' needs a table", "--latency lut needs a table"),
        ("names=('naswot', 'zen'): unknown proxy 'zen'", "--proxy naswot,zen: unknown proxy 'zen'"),
        ("data='/no/where' does not exist", "--data /no/where does not exist"),
        ("study_name='a b' is not a name", "--study 'a b' is not a name"),
        ("study='x' and storage='sqlite:///s.db'", "--study x and --storage sqlite:///s.db"),
        ("budget_flops=146000000.0 is below", "--budget 146MFLOPs is below"),
        ("budget_mflops=inf: give a positive number", "--budget inf: give a positive number"),
        ("latency_budget_ms=2.0 is too tight", "--latency-budget 2ms is too tight"),
        ("normalize=False, seed_baselines=False", "--raw, --no-seed-baselines"),
        ("isolate=True", "--isolate"),
        ("made with seed=None (now 7)", "made with no --seed (now 7)"),
        ("train_config.batch_size=1: need 2", "--train-batch-size 1: need 2"),
        ("train_config.steps=0 and batch_size=1", "--steps 0 and --batch-size 1"),
        ("use batch=4.", "use --batch 4."),
        # left as they are: flags already, names the CLI has no flag for, URLs, other code
        ("--target gpu: no CUDA GPU; use --target cpu", "--target gpu: no CUDA GPU; use --target cpu"),
        ("233 channels not divisible by groups=8", "233 channels not divisible by groups=8"),
        ("postgresql://u@h/db?password=***&seed=1", "postgresql://u@h/db?password=***&seed=1"),
        ("run `shufflenet-nas show --all` or `momentum`", "run `shufflenet-nas show --all` or `momentum`"),
        ("num_classes=0", "num_classes=0"),
    ],
)
def test_library_parameters_are_shown_as_flags(message: str, shown: str) -> None:
    assert as_flags(message) == shown


def _cli_options() -> set[str]:
    """Every option and argument name of every command."""
    names: set[str] = set()

    def walk(command: Any) -> None:
        for param in command.params:
            names.update(param.opts + param.secondary_opts)
            names.add(param.name.upper())  # an argument, as --help writes it
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(get_command(app))
    return names


def test_every_flag_of_the_table_is_an_option_or_argument() -> None:
    options = _cli_options()
    for flag in FLAGS.values():
        assert flag.name in options and (flag.off is None or flag.off in options), flag


def _search_module(name: str) -> Any:
    """``nas.search``'s public names, or where they live behind it (the module is being split)."""
    for module in ("shufflenet_nas.nas.search", "shufflenet_nas.nas.search_config"):
        found = getattr(importlib.import_module(module), name, None)
        if found is not None:
            return found
    raise AttributeError(name)


def _parameters(api: Callable[..., Any]) -> list[str]:
    if dataclasses.is_dataclass(api):
        return [f.name for f in dataclasses.fields(api)]
    return list(inspect.signature(api).parameters)


NO_FLAG = {
    "measure",  # SearchConfig: the measurement options themselves
    "anchor_ms",  # MeasureConfig: a study's own speed anchor, from the study
    "num_classes",  # from --data
    "ranges",  # the space's ranges: no option (yet)
    "families",  # --family
    "config",
    "callbacks",
    "worker",
    "on_progress",
    "genotype",  # ARCH
    "arch",  # ARCH
    "report",
    "progress",
    "train_config",  # its fields are mapped
    "table",
    "momentum",  # TrainConfig, TrainRecipe: the recipe's fixed parts
    "weight_decay",
    "eval_every",
    "val_images",
    "warmup_epochs",
    "label_smoothing",
    "crop_scale",
    "mixed_precision",
    "batchnorm_images",
    "zero_init_residual",
    "name",  # train_architecture's file name: the arch id
    "on_start",
    "writable",  # load_study: train opens the study to record accuracy
    "recipe",
    "rows",
    "study",  # train_rows: the opened study
    "study_dir",  # train_rows: train's SOURCE
    "item",  # export: SOURCE and the selection
    "genotypes",  # measure_interleaved: compare's study
    "summary",  # compare_study: the study's summary
}


def test_every_library_parameter_has_a_flag_or_is_known_to_have_none() -> None:
    from shufflenet_nas import build_model, load_study, measure_latency, validate_against_results
    from shufflenet_nas.nas.data import load_dataset
    from shufflenet_nas.nas.latency import MeasureConfig, measure_interleaved
    from shufflenet_nas.nas.lut import LatencyTable, compare
    from shufflenet_nas.nas.proxies import compute_proxies
    from shufflenet_nas.nas.short_training import TrainConfig
    from shufflenet_nas.nas.train_architecture import train_architecture
    from shufflenet_nas.nas.training import TrainRecipe
    from shufflenet_nas.nas.validation import validate_against_paper, validate_against_training
    from shufflenet_nas.results.compare import compare_study
    from shufflenet_nas.results.export import export
    from shufflenet_nas.results.selection import Selection
    from shufflenet_nas.results.training import train_rows
    from shufflenet_nas.search_spaces import SearchSpace

    apis = [MeasureConfig, _search_module("SearchConfig"), _search_module("run_search"), _search_module("run_workers")]
    apis += [measure_latency, build_model, validate_against_results]
    apis += [load_dataset, compute_proxies, validate_against_paper, validate_against_training, load_study]
    apis += [SearchSpace, LatencyTable.open, compare]
    apis += [TrainRecipe, train_architecture, Selection, train_rows, measure_interleaved, compare_study]
    names = {name for api in apis for name in _parameters(api)} - {"self", "cls"}
    names |= {f"train_config.{name}" for name in _parameters(TrainConfig)}
    names |= {f"export.{name}" for name in _parameters(export)}  # the CLI qualifies them: parameters_of("export")
    unmapped = {name for name in names if cli_errors._flag(name) is None and name.split(".")[-1] not in NO_FLAG}
    assert not unmapped
    last = {name.split(".")[-1] for name in names}
    unknown = {key for key in FLAGS if key.split(".")[-1] not in last}
    assert not unknown  # every key of the table is a parameter of the library


def test_show_names_its_argument_where_the_library_names_its_study(tmp_path: Any) -> None:
    result = runner.invoke(app, ["show", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: STUDY_DIR {tmp_path} holds no study.db"), result.output
    missing = runner.invoke(app, ["show"])
    assert missing.exit_code == 2 and "--storage URL with --study NAME" in missing.output


def test_a_train_config_error_names_the_training_flags() -> None:
    result = runner.invoke(app, ["proxy", "shufflenet_v2_x0_5", "--train-batch-size", "1"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --train-batch-size 1: "), result.output


def test_the_choices_are_the_librarys() -> None:
    from shufflenet_nas.nas import latency, proxies

    assert tuple(Target) == latency.TARGETS
    assert set(Dtype) == set(latency.DTYPES)
    assert set(Runtime) == {runtime for runtimes in latency.RUNTIMES.values() for runtime in runtimes}
    assert tuple(common.Family) == _search_module("FAMILY_CHOICES")
    assert tuple(common.Sampler) == _search_module("SAMPLERS")
    assert tuple(common.Objective) == _search_module("OBJECTIVES")
    assert tuple(common.LatencyMode) == _search_module("LATENCY_MODES")
    assert tuple(common.Proxy) == proxies.PROXY_NAMES
    assert common.DEFAULT_PROXY == proxies.DEFAULT_PROXY
    assert common.DEFAULT_PROXY_BATCH_SIZE == proxies.DEFAULT_BATCH_SIZE


def test_a_choice_is_any_case_and_a_bad_one_is_one_line(tiny_v2: Any) -> None:
    assert MeasureOptions(Target("cpu"), dtype=Dtype.bf16).config().dtype == "bf16"
    result = runner.invoke(app, ["search", "--sampler", "annealing"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --sampler 'annealing' unknown; use one of tpe, nsga2, random"


def _raising(error: BaseException) -> typer.Typer:
    errors = typer.Typer(cls=ErrorHandlingGroup)

    @errors.command()
    def fail() -> None:
        raise error

    @errors.command()
    def other() -> None:
        """A second command, so that ``fail`` is a subcommand."""

    return errors


class _Interrupted(KeyboardInterrupt):
    """Like ``nas.search.Interrupted``: an interrupt that names its signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (InvalidArgumentError("threads=0: need at least 1"), 2, "error: --threads 0: need at least 1"),
        (UsageError("--workers 0: give 1 to 2"), 2, "error: --workers 0: give 1 to 2"),
        (ShuffleNetNASError("study.db is locked"), 1, "error: study.db is locked"),
        (DeviceUnavailableError("target='gpu': no CUDA GPU"), 1, "error: --target gpu: no CUDA GPU"),
        (RuntimeError("boom"), 1, "error: RuntimeError: boom (set SHUFFLENET_NAS_DEBUG=1 for the traceback)"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (_Interrupted(signal.SIGTERM), 143, "interrupted"),
    ],
)
def test_exit_codes_by_error_class(error: BaseException, code: int, line: str) -> None:
    result = runner.invoke(_raising(error), ["fail"])
    assert result.exit_code == code
    assert result.output.strip() == line


def test_the_measurement_options_are_defined_once_and_given_to_four_commands() -> None:
    root = get_command(app)
    commands = {"measure": root.commands["measure"], "search": root.commands["search"]}
    commands |= {f"lut {name}": command for name, command in root.commands["lut"].commands.items()}
    for name, command in commands.items():
        options = {param.name for param in command.params}
        assert {"target", "runtime", "dtype", "batch", "threads", "max_time", "precision", "normalize"} <= options
        assert ("isolate" in options) == (not name.startswith("lut")), name


def test_progress_without_a_terminal_is_a_line_per_change(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_module.progress("scoring") as bar:
        bar.update(1, total=3, description="shufflenet_v2_x1_0")
        bar.update(1, total=3, description="shufflenet_v2_x1_0")  # the same again: no new line
        for _ in bar.track(["a", "b"], "measuring parts"):
            pass
        bar.update(status="fastest 1.000 ms")
    assert capsys.readouterr().err.splitlines() == [
        "[1/3] shufflenet_v2_x1_0",
        "[0/2] measuring parts",
        "[1/2] measuring parts",
        "[2/2] measuring parts",
        "[2/2] measuring parts · fastest 1.000 ms",
    ]


def test_a_warning_is_one_line_on_stderr(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "cost_checks.json").write_text('{"truncated": ')
    run = subprocess.run(
        [sys.executable, "-m", "shufflenet_nas", "describe", "shufflenet_v2_x0_5", "--resolution", "64"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "SHUFFLENET_NAS_CACHE_DIR": str(tmp_path)},
    )
    assert run.stderr.startswith("warning: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "cost_checks.json is corrupt" in run.stderr and "moved it to cost_checks.json.corrupt-" in run.stderr
