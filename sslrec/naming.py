"""One vocabulary for run names (wandb), sweep folders and report labels.

``simgcl-noise-lam0.1-eps0.1-t0.2-k3-lastfm-s1``: the model, its augmenter, the ranking loss
when it is not BPR, and the key hyperparameters. Reports label configurations with the same
words (``sgl ed``, ``lightgcn hinge``), so a dashboard, a folder and a table line up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import get_class

_AUGMENTER_LABELS = {"EdgeDropout": "ed", "NodeDropout": "nd", "RandomWalk": "rw"}
_DEFAULT_LOSSES = ("bpr",)  # not named in labels


def class_name(target: Any) -> str:
    """``sslrec.models.SimGCL`` -> ``SimGCL``."""
    return str(target).rsplit(".", 1)[-1]


def model_label(target: Any) -> str:
    """``sslrec.models.SimGCL`` -> ``simgcl``."""
    return class_name(target).lower()


def augmenter_label(target: Any, distribution: str | None = None) -> str:
    """``ed``, ``nd``, ``rw``, ``noise`` (uniform) or ``gaussian``; else the class name."""
    cls = class_name(target)
    if cls == "UniformNoise":
        return "noise" if (distribution or "uniform") == "uniform" else str(distribution)
    return _AUGMENTER_LABELS.get(cls, cls.lower())


def loss_label(target: Any) -> str:
    """The loss's logged name (``bpr``, ``hinge``, ``softmax``, ...): its class's ``name``."""
    try:
        return str(get_class(str(target)).name)
    except Exception:  # an old or foreign run directory: fall back to the class name
        return class_name(target).lower().removesuffix("loss")


def variant_prefix(config: Mapping[str, Any]) -> list[str]:
    """``[model, augmenter?, loss?]`` of a flattened config (dotted keys), e.g.
    ``["sgl", "ed"]`` or ``["lightgcn", "hinge"]``; BPR is the default and not named."""
    parts = [model_label(config.get("model._target_", "model"))]
    augmenter = config.get("augmenter._target_")
    if augmenter:
        parts.append(augmenter_label(augmenter, config.get("augmenter.distribution")))
    loss = config.get("loss._target_")
    if loss:
        label = loss_label(loss)
        if label not in _DEFAULT_LOSSES:
            parts.append(label)
    return parts


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def run_name(cfg: Mapping[str, Any]) -> str:
    """Run label from the model, its augmenter, the loss and key hyperparameters, e.g.
    ``simgcl-noise-lam0.1-eps0.1-t0.2-k3-lastfm-s1``, ``lightgcn-k3+e0-lastfm-s1`` (``+e0``: the
    layer-0 embeddings join the layer mean) or ``mf-hinge-lastfm-s1``."""
    m, aug = cfg["model"], cfg.get("augmenter")
    # an augmenter left in the config of a model without one (lightgcn) is not named
    named = ("model", "loss", "augmenter") if "ssl_weight" in m else ("model", "loss")
    parts = variant_prefix(_flat({k: cfg[k] for k in named if k in cfg}))
    if "ssl_weight" in m:
        parts.append(f"lam{m['ssl_weight']}")
    loss = cfg.get("loss") or {}
    if loss.get("weight", 1.0) != 1.0:
        parts.append(f"{loss_label(loss['_target_'])}{loss['weight']}")  # bpr0.0: CL only
    if aug is not None and "ssl_weight" in m:
        if "ratio" in aug:
            parts.append(f"r{aug['ratio']}")
        if "eps" in aug:
            parts.append(f"eps{aug['eps']}")
    if m.get("head") is not None and "temperature" in m["head"]:
        parts.append(f"t{m['head']['temperature']}")
    if "cl_layer" in m:
        parts.append(f"cl{m['cl_layer']}")
    if "num_layers" in m:
        parts.append(f"k{m['num_layers']}" + ("+e0" if m.get("include_layer0") else ""))
    parts += [str(cfg["dataset"]["name"]), f"s{cfg['seed']}"]
    return "-".join(parts)
