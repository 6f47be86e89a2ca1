"""The one place that turns errors into a line on stderr and an exit code: the library's parameter names
become the flags that set them (``FLAGS``), usage errors exit 2, others 1, a signal 128 + its number."""

from __future__ import annotations

import ast
import math
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from shufflenet_nas.cli.console import err
from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError, mask_password


class UsageError(Exception):
    """A bad command line found by the CLI itself (exit 2); its message speaks flags already."""


@dataclass(frozen=True)
class Flag:
    """How the command line spells a library parameter (an option, or an argument such as STUDY_DIR).
    ``off``: the flag that says False (``--raw``);
    ``unit`` and ``per``: a number ``n`` is written ``{n / per}{unit}`` (``budget_flops=146e6`` is
    ``--budget 146MFLOPs``)."""

    name: str
    off: str | None = None
    unit: str = ""
    per: float = 1.0


# The one table from the library's parameter names to flags (tests/cli/test_common.py checks it against the
# library's signatures and the CLI's options). A dotted name (``train_config.batch_size``) is looked up whole,
# then by its last part.
FLAGS: dict[str, Flag] = {
    # MeasureConfig (nas.latency)
    "target": Flag("--target"),
    "runtime": Flag("--runtime"),
    "dtype": Flag("--dtype"),
    "batch": Flag("--batch"),
    "threads": Flag("--threads"),
    "max_time_s": Flag("--max-time"),
    "rel_precision": Flag("--precision"),
    "normalize": Flag("--normalize", off="--raw"),
    "isolate": Flag("--isolate"),
    "weights": Flag("--weights"),  # measure_latency, build_model
    "results": Flag("--against"),  # validate_against_results
    # SearchConfig (nas.search), run_search / run_workers, and the settings a study records
    "study_name": Flag("--study"),
    "budget_flops": Flag("--budget", unit="MFLOPs", per=1e6),
    "budget_mflops": Flag("--budget", unit="MFLOPs"),
    "params_budget": Flag("--params-budget"),
    "latency_budget_ms": Flag("--latency-budget", unit="ms"),
    "latency_target_ms": Flag("--latency-target", unit="ms"),
    "proxy_floor": Flag("--proxy-floor"),
    "family": Flag("--family"),
    "sampler": Flag("--sampler"),
    "seed": Flag("--seed"),
    "proxy": Flag("--proxy"),
    "objective": Flag("--objective"),
    "latency_mode": Flag("--latency"),
    "resolution": Flag("--resolution"),  # also of load_dataset (nas.data)
    "data": Flag("--data"),  # also of load_dataset and compute_proxies
    "data.num_classes": Flag("--data", unit=" classes"),  # the class count of --data (a resume's check)
    "results_dir": Flag("--results-dir"),
    "storage": Flag("--storage"),
    "seed_baselines": Flag("--seed-baselines", off="--no-seed-baselines"),
    "n_trials": Flag("--n-trials"),
    "timeout": Flag("--timeout"),
    "workers": Flag("--workers"),
    # compute_proxies (nas.proxies), validate_against_paper / validate_against_training (nas.validation)
    "names": Flag("--proxy"),
    "batch_size": Flag("--batch-size"),
    "samples": Flag("--samples"),
    "resamples": Flag("--resamples"),  # the bootstrap of validate_against_paper / _training / _results
    # TrainConfig (nas.short_training), the train_config of compute_proxies and validate_against_training
    "steps": Flag("--steps"),
    "epochs": Flag("--epochs"),
    "train_config.batch_size": Flag("--train-batch-size"),
    # LatencyTable.open and compare (nas.lut)
    "cache_dir": Flag("--cache-dir"),
    "estimate": Flag("--estimate"),
    # load_study (results.summary); show's argument STUDY_DIR where it gives the study
    "study": Flag("--study"),
    "study_dir.study": Flag("STUDY_DIR"),
    "source.study": Flag("SOURCE"),  # train's argument, where it names a study
    # TrainRecipe (nas.training), train_architecture (nas.train_architecture), Selection (results.training)
    "lr": Flag("--lr"),
    "device": Flag("--device"),
    "out_dir": Flag("--out"),
    "restart": Flag("--restart"),
    "flip": Flag("--flip", off="--no-flip"),
    "refine.epochs": Flag("--refine-epochs"),  # search --proxy-refine's recipe
    # measure_interleaved / time_interleaved (nas.latency), compare_study (results.compare)
    "rounds": Flag("--rounds"),
    "runs": Flag("--runs"),
    # export (results.export)
    "export.fmt": Flag("--format"),
    "export.path": Flag("--out"),
    "pareto": Flag("--pareto"),
    "best_v1": Flag("--best-v1"),
    "best_v2": Flag("--best-v2"),
    "trials": Flag("--trial"),
    "baselines": Flag("--baselines", off="--no-baselines"),
}

_NAME = r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
_VALUE = (  # a Python literal: a quoted string, a tuple or list (not nested), or a bare word or number
    r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\([^()]*\)|\[[^\[\]]*\]|[^\s,;:()\[\]{}'\"]+"
)
_ASSIGNMENT = re.compile(rf"(?<![\w.?&/-]){_NAME}=(?P<value>{_VALUE})")
_BACKQUOTED = re.compile(rf"`{_NAME}`")
_WORD = re.compile(r"[\w.+\-/:@%~=,*]+")  # a value that needs no quotes on a command line


def _flag(name: str) -> Flag | None:
    return FLAGS.get(name) or FLAGS.get(name.rsplit(".", 1)[-1])


def _spell(flag: Flag, value: str) -> str:
    """``--flag value`` for a parameter's value as the library wrote it (a Python literal)."""
    if value == "True":
        return flag.name
    if value == "None" or (value == "False" and flag.off is None):
        return f"no {flag.name}"
    if value == "False":
        return flag.off or flag.name
    if value[:1] in "'\"([":
        return f"{flag.name} {_word(value)}"
    if flag.unit:
        try:
            number = float(value) / flag.per
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return f"{flag.name} {number:.10g}{flag.unit}"
    return f"{flag.name} {value}"


def _word(literal: str) -> str:
    """A quoted string, tuple or list as a command line writes it: ``'fp16'`` is fp16, ``('a', 'b')`` is
    a,b (as --proxy takes several); quotes stay where the shell would need them."""
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return literal
    if isinstance(value, (tuple, list)) and all(isinstance(item, (str, int, float)) for item in value):
        value = ",".join(map(str, value))
    if not isinstance(value, str):
        return literal
    return value if _WORD.fullmatch(value) else repr(value)


def _assignment(match: re.Match[str]) -> str:
    flag = _flag(match["name"])
    if flag is None:
        return match[0]
    value, tail = match["value"], ""
    if value.endswith(".") and value[:1] not in "'\"":  # the sentence's full stop
        value, tail = value[:-1], "."
    return _spell(flag, value) + tail


def _backquoted(match: re.Match[str]) -> str:
    flag = _flag(match["name"])
    return match[0] if flag is None else flag.name


def as_flags(message: str) -> str:
    """A library message as the command line says it: ``name=value`` becomes ``--flag value`` and a
    backquoted `` `name` `` becomes ``--flag``, for every parameter in ``FLAGS``; the rest is left as it is
    (a message that names flags already passes unchanged)."""
    return _BACKQUOTED.sub(_backquoted, _ASSIGNMENT.sub(_assignment, message))


@contextmanager
def parameters_of(owner: str) -> Iterator[None]:
    """Within the block, the library's ``name=value`` of a parameter ``FLAGS`` knows as ``owner.name`` is that
    one: ``TrainConfig``'s ``batch_size=1`` is ``train_config.batch_size=1``, shown as ``--train-batch-size 1``."""
    try:
        yield
    except InvalidArgumentError as error:

        def qualify(match: re.Match[str]) -> str:
            return f"{owner}.{match[0]}" if f"{owner}.{match['name']}" in FLAGS else match[0]

        raise InvalidArgumentError(_ASSIGNMENT.sub(qualify, str(error))) from None


def interrupt_exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), as shells report a death by signal."""
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


def _debugging() -> bool:
    return os.environ.get("SHUFFLENET_NAS_DEBUG") == "1"


def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """``warnings.showwarning`` for the CLI: one line on stderr, its parameters spoken as flags."""
    text = as_flags(str(message)).splitlines()[0] if str(message).strip() else category.__name__
    err.print(f"[yellow]warning:[/yellow] {escape(mask_password(text))}", highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(mask_password(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class ErrorHandlingGroup(TyperGroup):
    """Turns known errors into one line on stderr and an exit code; tracebacks only when debugging.

    Exit codes: 2 a usage error (the CLI's own, or the library's ``InvalidArgumentError``), 1 any other
    ``ShuffleNetNASError`` or unexpected error, 128 + the signal's number when interrupted.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort, BrokenPipeError):
            raise  # Typer's own usage errors (a value of the wrong type ...) print as Typer prints them
        except KeyboardInterrupt as interrupt:
            err.print("interrupted")
            raise typer.Exit(interrupt_exit_code(interrupt)) from None
        except UsageError as error:
            raise _fail(as_flags(str(error)), 2) from None
        except ShuffleNetNASError as error:
            if _debugging():
                raise
            raise _fail(as_flags(str(error)), 2 if isinstance(error, InvalidArgumentError) else 1) from None
        except Exception as error:
            if _debugging():
                raise
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            raise _fail(f"{message} (set SHUFFLENET_NAS_DEBUG=1 for the traceback)", 1) from None
