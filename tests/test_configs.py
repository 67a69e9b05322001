"""Every config in conf/ composes, agrees with the Python defaults, and takes a loss step.

The rule that keeps one source of truth: what ``model=NAME`` (``loss=NAME``, ``trainer``, ...)
runs is the yaml, and every value the yaml sets equals the constructor's default, so a model
built in Python without arguments is the model the command line trains. The papers'
per-dataset settings live in ``conf/experiment/`` and are labelled there.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from sslrec.__main__ import config_dir
from sslrec.data import BPRSampler, DatasetSpec, load_dataset
from sslrec.factory import build_model
from sslrec.losses import total
from sslrec.run import load_data
from sslrec.train import TrainerConfig
from tests.conftest import compose_run_config

CONF = Path(config_dir())
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
#: fitted once in closed form (EASE, ItemKNN): no loss, no batches, no optimiser step
CLOSED_FORM = {"ease", "itemknn"}
TRAINED = [m for m in MODELS if m not in CLOSED_FORM]
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
AUGMENTERS = sorted(p.stem for p in (CONF / "augmenter").glob("*.yaml"))


def _defaults(cls: type) -> dict[str, object]:
    """Each constructor argument's default, looked up along the MRO (``**kwargs`` pass on)."""
    found: dict[str, object] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or name == "self":
                continue
            found.setdefault(name, param.default)
    return found


def _value(node: object) -> object:
    if isinstance(node, DictConfig) and "_target_" in node:
        return instantiate(node)
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


@pytest.mark.parametrize("name", MODELS)
def test_model_yaml_equals_the_constructor_defaults(hydra_conf, name):
    cfg = compose_run_config(f"model={name}")
    cls = get_class(cfg.model._target_)
    defaults = _defaults(cls)
    for key in cfg.model:
        if key == "_target_":
            continue
        assert key in defaults, f"{name}.yaml sets {key!r}, which {cls.__name__} does not take"
        default = defaults[key]
        if default is inspect.Parameter.empty:  # required (SGL's augmenter): just builds
            continue
        assert _value(cfg.model[key]) == default, f"{name}.yaml: {key}"


def test_every_model_yaml_sets_a_loss_and_its_class_takes_it(hydra_conf):
    for name in TRAINED:
        cfg = compose_run_config(f"model={name}")
        assert "loss" in cfg.model and cfg.model.loss == cfg.loss, name


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_closed_form_models_take_no_loss(hydra_conf, name):
    cfg = compose_run_config(f"model={name}")
    assert get_class(cfg.model._target_).closed_form
    assert "loss" not in cfg.model and "loss" not in cfg


@pytest.mark.parametrize("name", LOSSES)
def test_loss_yaml_equals_the_class_defaults(hydra_conf, name):
    cfg = compose_run_config(f"loss={name}")
    loss = instantiate(cfg.loss)
    if name == "bpr_sum":  # a named convention (official SGL-Torch), not a class default
        assert loss == dataclasses.replace(get_class(cfg.loss._target_)(), reduction="sum")
        return
    assert loss == get_class(cfg.loss._target_)(), name


@pytest.mark.parametrize("name", [n for n in AUGMENTERS if n != "gaussian"])
def test_augmenter_yaml_equals_the_class_defaults(hydra_conf, name):
    cfg = compose_run_config(
        "model=sgl" if name in ("ed", "nd", "rw") else "model=simgcl", f"augmenter={name}"
    )
    assert instantiate(cfg.augmenter) == get_class(cfg.augmenter._target_)()


def test_trainer_and_dataset_yaml_equal_the_dataclass_defaults(hydra_conf):
    cfg = compose_run_config()
    assert TrainerConfig(**OmegaConf.to_container(cfg.trainer)) == TrainerConfig()
    spec = DatasetSpec(**OmegaConf.to_container(cfg.dataset, resolve=True))
    default = DatasetSpec(name=spec.name)
    for key in (
        "valid_fraction",
        "split_seed",
        "allow_sparse_ids",
        "user_features_file",
        "item_features_file",
    ):
        assert getattr(spec, key) == getattr(default, key), key


def test_dataset_yaml_may_override_the_split_settings(hydra_conf):
    cfg = compose_run_config("dataset=custom", "dataset.path=x", "dataset.valid_fraction=0.2")
    assert cfg.dataset.valid_fraction == 0.2 and cfg.dataset.split_seed == 0


def test_conventions_are_presets(hydra_conf):
    """The reg and head conventions swap from the command line."""
    sgl = compose_run_config("model=sgl")
    assert sgl.model.reg.reduction == "sum" and sgl.loss.reduction == "sum"
    assert sgl.model.head.negatives == "all"
    swapped = compose_run_config("model=sgl", "model/reg=selfrec", "model/head=simgcl")
    assert swapped.model.reg.squared is False and swapped.model.head.negatives == "in_batch"
    assert compose_run_config("model=sgl", "loss=hinge").loss._target_.endswith("HingeLoss")


def _tiny_spec(cfg: DictConfig, tiny_dataset_dir: Path) -> DatasetSpec:
    """The config's dataset settings pointed at the tiny dataset."""
    return DatasetSpec(
        **OmegaConf.to_container(cfg.dataset, resolve=True)
        | {"name": "tiny", "path": str(tiny_dataset_dir), "n_users": None, "n_items": None}
    )


def _one_step(cfg: DictConfig, tiny_dataset_dir: Path, num_negatives: int | None = None) -> dict:
    """Load the tiny dataset, build the configured model and take one optimiser step
    (``num_negatives``: the config's ``trainer.num_negatives`` unless given)."""
    trainer = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
    if num_negatives is None:
        num_negatives = trainer.num_negatives
    data = load_data(_tiny_spec(cfg, tiny_dataset_dir), "validation")
    torch.manual_seed(0)
    model = build_model(cfg.model, data, torch.device("cpu"))
    sampler = BPRSampler(
        data.train,
        16,
        trainer.sampling,
        seed=0,
        num_negatives=num_negatives,
        negative_sampling=trainer.negative_sampling,
    )
    opt = torch.optim.Adam(model.parameters(), lr=trainer.lr)
    model.start_epoch()
    batch = next(iter(sampler.epoch()))
    terms = model.loss(batch)
    loss = total(terms)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    scores = model.scorer().full_scores(torch.arange(3))
    assert scores.shape == (3, data.n_items) and torch.isfinite(scores).all()
    return terms


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_takes_a_loss_step(hydra_conf, tiny_dataset_dir, name):
    """A trained model takes one loss step; a closed-form one (EASE) is fitted instead."""
    cfg = compose_run_config(f"+experiment={name}")
    assert cfg.dataset.name in name  # the experiment's own dataset
    if getattr(get_class(cfg.model._target_), "closed_form", False):
        data = load_data(_tiny_spec(cfg, tiny_dataset_dir), cfg.trainer.protocol)
        model = build_model(cfg.model, data, torch.device("cpu"))
        model.fit()
        scores = model.scorer().full_scores(torch.arange(3))
        assert scores.shape == (3, data.n_items) and torch.isfinite(scores).all()
        return
    terms = _one_step(cfg, tiny_dataset_dir)
    assert "reg" in terms


#: models that score pairs with a network and have no user/item representations (NCF's MLP
#: and NeuMF): losses on representations must refuse them with RankingBatch's sentence
NETWORK_SCORED = {"mlp", "neumf"}


@pytest.mark.parametrize("model", TRAINED)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_model_trains_with_every_loss(hydra_conf, tiny_dataset_dir, model, loss):
    cfg = compose_run_config(f"model={model}", f"loss={loss}")
    if model in NETWORK_SCORED and instantiate(cfg.loss).needs_representations:
        with pytest.raises(ValueError, match=f"loss={loss} works on user and item repr"):
            _one_step(cfg, tiny_dataset_dir)
        return
    ks = (1, 4)
    if model == "mixgcf":  # synthesises each negative from n_negs candidates: [B] is refused
        with pytest.raises(ValueError, match=r"model=mixgcf .* needs batches of \[B, "):
            _one_step(cfg, tiny_dataset_dir, num_negatives=1)
        ks = (cfg.model.n_negs,)
    for k in ks:
        terms = _one_step(cfg, tiny_dataset_dir, num_negatives=k)
        expected = {
            "joint": {"bpr", "bce"},
            "directau": {"align", "uniform"},
            "bpr_sum": {"bpr"},
        }.get(loss, {loss})
        assert expected <= set(terms), (model, loss)


@pytest.mark.parametrize("model", ["sgl", "simgcl", "xsimgcl"])
@pytest.mark.parametrize("augmenter", AUGMENTERS)
def test_model_augmenter_pairs_train_or_refuse_with_a_sentence(
    hydra_conf, tiny_dataset_dir, model, augmenter
):
    cfg = compose_run_config(f"model={model}", f"augmenter={augmenter}")
    graph_aug = augmenter in ("ed", "nd", "rw")
    if graph_aug == (model == "sgl"):
        assert "ssl" in _one_step(cfg, tiny_dataset_dir)
    else:
        # hydra's instantiate wraps the model's ValueError; the sentence survives
        with pytest.raises(Exception, match=f"model={model} needs an? (graph|embedding)"):
            _one_step(cfg, tiny_dataset_dir)


def test_loaded_dataset_for_steps_is_tiny(tiny_dataset_dir):
    assert load_dataset(DatasetSpec(name="tiny", path=str(tiny_dataset_dir))).n_users == 40
