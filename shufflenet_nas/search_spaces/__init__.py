"""Architectures as data (genotypes, search space, the papers' baselines) and as torch modules.

Importing this package does not import torch: ``build``, ``ShuffleNet`` and ``build_model`` import it when used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shufflenet_nas._lazy import lazy_exports
from shufflenet_nas.search_spaces.baselines import BASELINES, Baseline, get_baseline
from shufflenet_nas.search_spaces.genotype import Genotype, StageGene
from shufflenet_nas.search_spaces.spaces import SearchSpace, SpaceRanges

WEIGHTS_SUFFIXES = (".pt", ".pth")

if TYPE_CHECKING:
    from shufflenet_nas.search_spaces.builder import ShuffleNet, build
    from shufflenet_nas.search_spaces.weights import Weights

__all__ = [
    "BASELINES",
    "Baseline",
    "Genotype",
    "SearchSpace",
    "ShuffleNet",
    "SpaceRanges",
    "StageGene",
    "build",
    "build_model",
    "get_baseline",
    "resolve_arch",
]


def resolve_arch(arch: str | Path | Genotype) -> Genotype:
    """A genotype from a baseline name, a genotype string, a JSON file, or a Genotype.

    JSON files: a genotype's JSON form, any object with a ``genotype`` string (``describe --json``,
    ``measure --json``), or a search summary (``results/<study>/pareto.json``, ``show --json``). From a
    summary, by default: its best V2-style architecture, else its best V1-style, else the first (fastest) of
    its Pareto front. A suffix picks another: ``pareto.json#v1`` / ``#v2`` (the best of that family),
    ``#trial12`` (trial 12) or ``#<arch_id>`` (e.g. ``#6d657583a249``), looked up in the summary's best,
    Pareto front, baselines and trials. Weights written by ``train`` (``.pt``) give the genotype they were
    trained as (read with torch).

    Raises ``ValueError`` naming what was given and the accepted forms.
    """
    if isinstance(arch, Genotype):
        return arch
    text = str(arch).strip()
    if text in BASELINES:
        return BASELINES[text].genotype
    if text.startswith("stem"):
        return Genotype.from_string(text)
    path, pick = Path(text), None
    if not path.is_file() and "#" in text:
        head, pick = text.rsplit("#", 1)
        path = Path(head)
    if path.is_file() and path.suffix in WEIGHTS_SUFFIXES and pick is None:
        from shufflenet_nas.search_spaces.weights import genotype_of_weights

        return genotype_of_weights(path)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: cannot read it ({error})") from None
        except ValueError as error:
            raise ValueError(f"{path} is not a JSON file ({error}); give a genotype JSON or pareto.json") from None
        if isinstance(data, dict) and isinstance(data.get("pareto"), list) and isinstance(data.get("best"), dict):
            return _from_summary(path, data, pick)
        if pick is not None:
            raise ValueError(f"{path} holds one architecture, not a search summary; drop '#{pick}'")
        try:
            return Genotype.from_json(json.dumps(data))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    if text.endswith(".json") or (pick is not None and path.suffix == ".json"):
        raise ValueError(f"architecture file {path} does not exist; check the path")
    raise ValueError(
        f"{text!r} is not a baseline name, a genotype string (stem...), a JSON file or trained weights (.pt); "
        "baseline names are the keys of BASELINES"
    )


def _from_summary(path: Path, data: dict[str, Any], pick: str | None) -> Genotype:
    """One architecture of a search summary (pareto.json): see ``resolve_arch``."""
    best: dict[str, Any] = data["best"]
    no_best: dict[str, str] = data.get("no_best") or {}
    rows = [*best.values(), *data["pareto"], *(data.get("baselines") or []), *(data.get("trials") or [])]
    rows = [row for row in rows if isinstance(row, dict) and isinstance(row.get("genotype"), str)]
    picks = ", ".join(f"best {family} (trial {row.get('number')})" for family, row in best.items()) or "no best"
    holds = f"it holds {picks} and {len(data['pareto'])} Pareto-front architectures"
    if pick is None:
        for family in ("V2-style", "V1-style"):
            if family in best:
                return Genotype.from_string(best[family]["genotype"])
        if data["pareto"]:
            return Genotype.from_string(data["pareto"][0]["genotype"])
        raise ValueError(f"{path} is a search summary with no architecture on its Pareto front")
    key = pick.strip().lower()
    if key in ("v1", "v2"):
        family = f"{key.upper()}-style"
        if family in best:
            return Genotype.from_string(best[family]["genotype"])
        why = f" ({no_best[family]})" if family in no_best else ""
        raise ValueError(f"{path} holds no best {family}{why}; {holds}")
    if key.startswith("trial") and key[5:].isdigit():
        found = [row for row in rows if row.get("number") == int(key[5:])]
    else:
        found = [row for row in rows if row.get("arch_id") == key]
    if found:
        return Genotype.from_string(found[0]["genotype"])
    raise ValueError(f"{path} has no architecture '#{pick}' (use #v1, #v2, #trial<N> or #<arch_id>); {holds}")


def build_model(arch: str | Path | Genotype, weights: Weights | None = None) -> ShuffleNet:
    """The network of a baseline name, genotype string, JSON file or Genotype: freshly initialised, or with
    ``weights`` loaded by key (a ``torch.save`` file or a state dict; see ``weights.load_weights``), such as
    torchvision's ShuffleNetV2 checkpoints for the V2 baselines."""
    from shufflenet_nas.search_spaces.builder import build
    from shufflenet_nas.search_spaces.weights import load_weights

    genotype = resolve_arch(arch)
    model = build(genotype)
    if weights is not None:
        load_weights(model, weights, str(arch) if str(arch) in BASELINES else genotype.to_string())
    return model


# ``build`` and ``ShuffleNet`` import torch: loaded on first use.
_, __getattr__, __dir__ = lazy_exports(__name__, {"shufflenet_nas.search_spaces.builder": ["ShuffleNet", "build"]})
