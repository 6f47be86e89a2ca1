"""`show` on studies written the way the search writes them; files it writes accepted back as ARCH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from shufflenet_nas import load_study, summarise, write_artifacts
from shufflenet_nas.cli.app import app
from shufflenet_nas.nas.storage import make_storage
from shufflenet_nas.results.loading import read_only_sqlite_url
from tests.results.studies import V1, V2, T, make_study, write_study_dir

runner = CliRunner()
States = optuna.trial.TrialState
NAME = "cpu-146M-mixed"


def trials() -> list[T]:
    return [
        T(11.146, 107.6, baseline="shufflenet_v2_x1_0"),
        T(18.888, 109.5, family=V1, baseline="shufflenet_v1_g8_x1_0"),
        T(9.655, 108.1, variant=1),  # beats V2 1.0x
        T(12.0, 109.0, family=V1, variant=2),  # faster than V1 g8 but below its proxy: no best V1-style
        T(9.9, 108.1, variant=1),  # trial 2's architecture again
        T(mflops=151.0, variant=3, feasible=False, constraints={"mflops_over_budget": 5.0}),
        T(state=States.FAIL, variant=4, attrs={"failure_reason": "NaN proxy score"}),
        T(state=States.WAITING, baseline="shufflenet_v1_g4_x1_0"),
    ]


def write_study(directory: Path, items: list[T] | None = None, **settings: object) -> optuna.Study:
    """``trials()`` (or ``items``) in ``directory/study.db``."""
    return write_study_dir(directory, trials() if items is None else items, **settings)


def test_show_names_the_best_the_missing_best_and_the_reference(tmp_path: Path) -> None:
    write_study(tmp_path / NAME)
    shown = runner.invoke(app, ["show", str(tmp_path / NAME)])
    assert shown.exit_code == 0, shown.output
    assert "best V2-style trial 2 · 13.4% lower latency than shufflenet_v2_x1_0 (9.655 vs 11.146 ms; " in shown.output
    assert (
        "no best V1-style: no V1-style architecture was faster than shufflenet_v1_g8_x1_0 at its proxy or better"
        in shown.output
    )
    assert "best V1-style" not in shown.output.replace("no best V1-style", "")
    data = json.loads(runner.invoke(app, ["show", str(tmp_path / NAME), "--json"]).stdout)
    assert set(data["best"]) == {V2} and data["best"][V2]["number"] == 2
    assert data["no_best"][V1].startswith("no V1-style architecture was faster than shufflenet_v1_g8_x1_0")
    assert data["comparisons"][V2]["baseline"] == "shufflenet_v2_x1_0"


def test_show_holds_each_best_against_v2_1x_guideline_by_guideline(tmp_path: Path) -> None:
    write_study(tmp_path / NAME)
    shown = runner.invoke(app, ["show", str(tmp_path / NAME)])
    assert shown.exit_code == 0, shown.output
    assert "best V2-style trial 2 vs shufflenet_v2_x1_0, ShuffleNet V2's guidelines (counted" in shown.output
    lines = [line.strip() for line in shown.output.splitlines() if line.strip()[:2] in ("G1", "G2", "G3", "G4")]
    assert [line[:2] for line in lines] == ["G1", "G2", "G3", "G4"]  # the best's stem is 36 wide, V2 1.0x's 24:
    assert lines[0].endswith("as V2 1.0x (-0.5 pts)")  # its first 1x1 convs 36 -> 58 are nearer 1:1, by little
    assert lines[1].endswith(": as V2 1.0x (+0.0 pts)") and lines[2].startswith("G3 fragmentation: 3.4 fragments")
    data = json.loads(runner.invoke(app, ["show", str(tmp_path / NAME), "--json"]).stdout)
    assert data["guidelines"][V2]["reference"] == "shufflenet_v2_x1_0" and V1 not in data["guidelines"]
    assert [v["better"] for v in data["guidelines"][V2]["verdicts"]] == ["equal"] * 4  # the same design


def test_show_lists_baselines_under_a_floor_above_them(tmp_path: Path) -> None:
    def below(proxy: float) -> dict[str, float]:
        return {"proxy_below_floor": 112.0 - proxy}

    items = [
        T(11.146, 107.6, baseline="shufflenet_v2_x1_0", feasible=False, constraints=below(107.6)),
        T(18.888, 109.5, family=V1, baseline="shufflenet_v1_g8_x1_0", feasible=False, constraints=below(109.5)),
        T(9.0, 100.0, variant=1, feasible=False, constraints=below(100.0)),
    ]
    write_study(tmp_path / NAME, items, proxy_floor="112")
    shown = runner.invoke(app, ["show", str(tmp_path / NAME)])
    assert shown.exit_code == 0, shown.output
    assert "shufflenet_v2_x1_0 (below floor)" in shown.output and "shufflenet_v1_g8_x1_0 (below floor)" in shown.output
    assert "no best V2-style: no V2-style architecture other than the paper models met the proxy floor 112" in (
        shown.output
    )


def test_show_all_lists_every_trial_and_why_it_is_no_result(tmp_path: Path) -> None:
    write_study(tmp_path / NAME)
    shown = runner.invoke(app, ["show", str(tmp_path / NAME), "--all"])
    assert shown.exit_code == 0, shown.output
    assert "every trial" in shown.output
    for reason in (
        "duplicate of trial 2",
        "over the FLOPs budget (151.0 > 146 MFLOPs)",
        "failed: NaN proxy score",
        "waiting (a seeded paper model not run yet)",
    ):
        assert reason in shown.output
    data = json.loads(runner.invoke(app, ["show", str(tmp_path / NAME), "--all", "--json"]).stdout)
    assert [t["number"] for t in data["trials"]] == list(range(len(trials())))
    assert [t["state"] for t in data["trials"]] == ["complete"] * 6 + ["failed", "waiting"]
    assert [t["result"] for t in data["trials"]] == [True] * 4 + [False] * 4
    assert data["trials"][4]["reason"] == "duplicate of trial 2"
    assert data["trials"][2]["genotype"] == data["best"][V2]["genotype"]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: root without capabilities (root ignores them)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot take away root's power to write read-only files")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


@pytest.mark.parametrize("search_attached", [False, True], ids=["closed", "wal-and-shm-present"])
def test_show_reads_a_study_in_a_read_only_folder_without_touching_it(tmp_path: Path, search_attached: bool) -> None:
    directory = tmp_path / NAME
    directory.mkdir()
    storage = make_storage(f"sqlite:///{directory / 'study.db'}")
    study = make_study(trials(), storage=storage, name=NAME)
    if search_attached:  # a search still attached: the last trial is in its -wal file only
        study.add_trial(optuna.trial.create_trial(state=States.RUNNING))
        assert (directory / "study.db-wal").stat().st_size > 0 and (directory / "study.db-shm").exists()
    else:
        storage.engine.dispose()
        assert [p.name for p in directory.iterdir()] == ["study.db"]
    before = snapshot(directory)
    prefix = unprivileged()
    for path in directory.iterdir():
        path.chmod(0o444)
    directory.chmod(0o555)
    try:
        can_write = subprocess.run(
            [*prefix, sys.executable, "-c", f"open({str(directory / 'probe')!r}, 'w')"], capture_output=True, text=True
        )
        assert can_write.returncode != 0 and "Permission denied" in can_write.stderr  # the folder really is read-only
        shown = [
            subprocess.run(
                [*prefix, sys.executable, "-m", "shufflenet_nas", "show", *where, "--all", "--json"],
                capture_output=True,
                text=True,
            )
            for where in ([str(directory)], ["--storage", f"sqlite:///{directory / 'study.db'}"])
        ]
    finally:
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)
    for result in shown:
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["counts"]["trials"] == len(trials()) + search_attached
        assert data["best"][V2]["number"] == 2
    assert snapshot(directory) == before  # no byte, no mtime changed; no -wal / -shm file created
    storage.engine.dispose()


def test_show_opens_sqlite_read_only(tmp_path: Path) -> None:
    write_study(tmp_path / NAME)
    url = read_only_sqlite_url(tmp_path / NAME / "study.db")
    assert "mode=ro" in url and "immutable=1" in url  # WAL mode, no -wal file: no writer attached
    before = snapshot(tmp_path / NAME)
    study = load_study(tmp_path / NAME)
    assert summarise(study, every_trial=True).best[V2].number == 2
    assert snapshot(tmp_path / NAME) == before  # in a writable folder too: no -wal / -shm file created
    with pytest.raises(optuna.exceptions.StorageInternalError) as error:
        study.set_user_attr("touched", True)
    assert "attempt to write a readonly database" in str(error.value.__cause__)
    assert (
        "touched"
        not in optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path / NAME / 'study.db'}").user_attrs
    )


def test_show_of_a_missing_or_foreign_database_is_one_line(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["show", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and not (tmp_path / "none.db").exists()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "study.db").write_text("not a database")
    junk = runner.invoke(app, ["show", str(tmp_path / "junk")])
    assert junk.exit_code == 1 and "cannot read" in junk.output and len(junk.output.strip().splitlines()) == 1


def describe_id(arch: str) -> dict[str, object]:
    result = runner.invoke(app, ["describe", arch, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_files_written_by_the_tool_are_accepted_as_arch(tmp_path: Path) -> None:
    items = [*trials()[:3], T(16.0, 109.6, family=V1, variant=2)]  # a best of each family
    summary = summarise(write_study(tmp_path / "results" / NAME, items))
    pareto = write_artifacts(summary, tmp_path / "results" / NAME)[0]
    best_v1, best_v2 = summary.best[V1], summary.best[V2]
    assert describe_id(str(pareto))["arch_id"] == best_v2.arch_id  # by default: the best V2-style
    assert describe_id(f"{pareto}#v1")["arch_id"] == best_v1.arch_id
    assert describe_id(f"{pareto}#v2")["arch_id"] == best_v2.arch_id
    assert describe_id(f"{pareto}#trial0")["genotype"] == summary.baselines[0].genotype
    assert describe_id(f"{pareto}#{best_v1.arch_id}")["arch_id"] == best_v1.arch_id
    described = describe_id(f"{pareto}#v1")
    saved = tmp_path / "described.json"
    saved.write_text(json.dumps(described))  # `describe --json > described.json`
    assert describe_id(str(saved))["arch_id"] == best_v1.arch_id
    shown = tmp_path / "shown.json"
    shown.write_text(runner.invoke(app, ["show", str(tmp_path / "results" / NAME), "--all", "--json"]).stdout)
    assert describe_id(f"{shown}#trial3")["arch_id"] == best_v1.arch_id


def test_a_summary_without_the_asked_architecture_is_a_one_line_error(tmp_path: Path) -> None:
    summary = summarise(write_study(tmp_path / NAME))  # no best V1-style
    pareto = write_artifacts(summary, tmp_path / NAME)[0]
    for suffix, expected in [
        ("#v1", "holds no best V1-style (no V1-style architecture was faster than shufflenet_v1_g8_x1_0"),
        ("#trial99", "has no architecture '#trial99' (use #v1, #v2, #trial<N> or #<arch_id>)"),
    ]:
        result = runner.invoke(app, ["describe", f"{pareto}{suffix}"])
        assert result.exit_code == 2 and str(pareto) in result.output and expected in result.output
        assert len(result.output.strip().splitlines()) == 1
    genotype_file = tmp_path / "one.json"
    genotype_file.write_text(json.dumps({"genotype": summary.best[V2].genotype}))
    one = runner.invoke(app, ["describe", f"{genotype_file}#v1"])
    assert one.exit_code == 2 and "holds one architecture, not a search summary" in one.output


def test_show_of_a_reward_study_names_its_table_by_reward(tmp_path: Path) -> None:
    trials = [T(3.0, 1.3e6, baseline="shufflenet_v2_x0_5", reward=1.0), T(2.5, 1.4e6, variant=1, reward=1.2)]
    write_study_dir(tmp_path / "reward", trials, objective="reward", proxy="params", resolution=32)
    shown = runner.invoke(app, ["show", str(tmp_path / "reward")])
    assert shown.exit_code == 0, shown.output
    assert "the 10 highest rewards and paper baselines" in shown.output and "Pareto front" not in shown.output
