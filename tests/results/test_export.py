"""Every export format, written and read back as a user would: ONNX in onnxruntime, pt2 with torch.export.load,
the standalone .py in a fresh interpreter without shufflenet_nas, JSON and state dicts through resolve_arch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shufflenet_nas import Genotype, ShuffleNetNASError, build_model, resolve_arch
from shufflenet_nas.results.export import ONNX_TOLERANCE, ExportItem, export

MIXED = "stem8s1-v1_n2_c24_g2_k5_se_res-v2_n2_c32_g1_r0.375_k3_res-v2_n2_c64_g2_r0.5_k7_se-head64-in32-cls10"
SHAPES = [
    MIXED,  # V1 groups + SE + residual, V2 split 0.375, grouped V2 with SE, k5 and k7
    "stem8s1-v1_n2_c32_g4_k3_noshuffle-v1_n1_c64_g4_k3-head0-down_official-fc_nobias-in32-cls5",
    "stem8s2-v2_n2_c16_g1_r0.5_k3_noshuffle-v2_n1_c32-head32-down_official-in32-cls3",  # stem stride 2
    "stem8s4-v2_n1_c16-v1_n2_c48_g2_k3_res-head0-in64-cls2",  # stem stride 4 (max pool)
]


def _probe_weights(genotype: Genotype, path: Path) -> Path:
    """Weights far from initialisation (BatchNorm statistics and scales included): outputs of order 1."""
    model = build_model(genotype)
    generator = torch.Generator().manual_seed(1)
    state = {}
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            values = torch.rand(tensor.shape, generator=generator) + 0.5 if "running_var" in key else None
            state[key] = values if values is not None else 0.3 * torch.randn(tensor.shape, generator=generator)
        else:
            state[key] = tensor
    torch.save(state, path)
    return path


@pytest.mark.parametrize("arch", SHAPES)
def test_the_standalone_file_reproduces_the_model_exactly_in_a_fresh_interpreter(arch: str, tmp_path: Path) -> None:
    genotype = Genotype.from_string(arch)
    weights = _probe_weights(genotype, tmp_path / "weights.pt")
    exported = export(ExportItem(genotype, "probe", weights), "py", tmp_path / "net.py")
    assert exported.max_abs_diff == 0
    source = (tmp_path / "net.py").read_text()
    assert "shufflenet_nas" not in source and "class ShuffleV1Unit" in source and "STAGES = [" in source
    side = genotype.resolution
    inputs = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    torch.save(inputs, tmp_path / "inputs.pt")
    script = (
        "import sys, importlib.util, torch\n"
        "torch.set_num_threads(1)\n"
        f"spec = importlib.util.spec_from_file_location('net', {str(tmp_path / 'net.py')!r})\n"
        "net = importlib.util.module_from_spec(spec); sys.modules['net'] = net; spec.loader.exec_module(net)\n"
        "model = net.ShuffleNet().eval()\n"
        f"model.load_state_dict(torch.load({str(weights)!r}))\n"
        f"with torch.no_grad(): torch.save(model(torch.load({str(tmp_path / 'inputs.pt')!r})), "
        f"{str(tmp_path / 'out.pt')!r})\n"
        "assert not any(name.startswith('shufflenet_nas') for name in sys.modules), 'imported shufflenet_nas'\n"
    )
    run = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    model = build_model(genotype, weights=weights).eval()
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "out.pt"), model(inputs))


def test_onnx_has_a_dynamic_batch_and_matches_pytorch(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    genotype = Genotype.from_string(MIXED)
    weights = _probe_weights(genotype, tmp_path / "weights.pt")
    exported = export(ExportItem(genotype, "probe", weights), "onnx", tmp_path / "net.onnx")
    assert exported.max_abs_diff is not None and exported.max_abs_diff <= ONNX_TOLERANCE
    assert "opset 17, dynamic batch axis" in exported.check
    graph = onnx.load(str(tmp_path / "net.onnx"))
    assert graph.opset_import[0].version == 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    inputs = torch.randn(5, 3, 32, 32)
    (output,) = session.run(None, {"x": inputs.numpy()})
    with torch.no_grad():
        expected = build_model(genotype, weights=weights).eval()(inputs).numpy()
    assert output.shape == (5, 10) and np.abs(output - expected).max() <= ONNX_TOLERANCE
    assert np.abs(expected).max() > 0.1  # outputs large enough for the tolerance to mean something


def test_a_pt2_program_loads_back_and_runs_at_any_batch(tmp_path: Path) -> None:
    genotype = Genotype.from_string(MIXED)
    weights = _probe_weights(genotype, tmp_path / "weights.pt")
    exported = export(ExportItem(genotype, "probe", weights), "pt2", tmp_path / "net.pt2")
    assert exported.max_abs_diff is not None and exported.max_abs_diff <= 1e-5
    program = torch.export.load(str(tmp_path / "net.pt2")).module()
    inputs = torch.randn(7, 3, 32, 32)
    with torch.no_grad():
        expected = build_model(genotype, weights=weights).eval()(inputs)
        assert torch.allclose(program(inputs), expected, atol=1e-5)


def test_json_and_state_dict_read_back_through_resolve_arch(tmp_path: Path) -> None:
    genotype = Genotype.from_string(MIXED)
    weights = _probe_weights(genotype, tmp_path / "weights.pt")
    item = ExportItem(genotype, "trial 3", weights, trial={"latency_ms": 1.5, "proxy": 2.0}, provenance={"trial": 3})
    export(item, "json", tmp_path / "net.json")
    data = json.loads((tmp_path / "net.json").read_text())
    assert resolve_arch(str(tmp_path / "net.json")) == genotype
    assert data["cost"]["params"] == sum(p.numel() for p in build_model(genotype).parameters())
    assert data["trial"] == {"latency_ms": 1.5, "proxy": 2.0} and data["provenance"]["trial"] == 3
    assert data["weights"].startswith("trained (") and data["provenance"]["exported_by"].startswith("shufflenet-nas")
    export(item, "state-dict", tmp_path / "net.pt")
    loaded = build_model(resolve_arch(str(tmp_path / "net.pt")), weights=tmp_path / "net.pt").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in torch.load(weights).items())


def test_bad_format_and_unwritable_path_are_one_line_errors(tmp_path: Path) -> None:
    genotype = Genotype.from_string(MIXED)
    with pytest.raises(ValueError, match="fmt='xml' is not one of json, onnx, pt2, py, state-dict"):
        export(ExportItem(genotype, "x"), "xml", tmp_path / "x.xml")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot create its folder"):
        export(ExportItem(genotype, "x"), "json", tmp_path / "file" / "x.json")
    assert issubclass(ShuffleNetNASError, Exception)


def test_a_broken_conversion_is_caught_even_with_fresh_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    genotype = Genotype.from_string(MIXED)
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, names, feeds: [np.zeros((3, 10), np.float32)])
    with pytest.raises(ShuffleNetNASError, match="onnxruntime's output differs from PyTorch's by"):
        export(ExportItem(genotype, "fresh"), "onnx", tmp_path / "net.onnx")  # fresh outputs are ~1e-4: the probe
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".probe-*"))


def test_exporting_onto_the_source_is_refused(tmp_path: Path) -> None:
    genotype = Genotype.from_string(MIXED)
    weights = _probe_weights(genotype, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="is the file exported from; write elsewhere"):
        export(ExportItem(genotype, "x", weights), "state-dict", weights)
