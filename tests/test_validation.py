"""Issue 17: every configuration value is checked when the run starts, with a message naming
the key, the value and what is allowed, before the data is read (or, for what needs the data,
before the first epoch), and nothing is written into the run directory.

Before issue 17 these failed after a full epoch, as a raw ZeroDivisionError/IndexError/KeyError,
or ran to exit status 0 with meaningless results.
"""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from sslrec.run import run

BASE = (
    "dataset=custom",
    "logger=none",
    "model=mf",
    "trainer.epochs=1",
    "trainer.progress=false",
    "threads=1",
)

# overrides -> text the error must contain (the key and the value, and what is allowed)
BEFORE_DATA = {
    ("trainer.batch_size=0",): "trainer.batch_size=0: must be an integer >= 1",
    ("trainer.batch_size=-5",): "trainer.batch_size=-5: must be an integer >= 1",
    ("trainer.eval_every=0",): "trainer.eval_every=0: must be an integer >= 1",
    ("trainer.epochs=0",): "trainer.epochs=0: must be an integer >= 1",
    ("trainer.patience=0",): "trainer.patience=0: must be an integer >= 1",
    ("trainer.lr=0",): "trainer.lr=0.0: must be a finite number > 0",
    ("trainer.lr=-0.1",): "trainer.lr=-0.1: must be a finite number > 0",
    ("trainer.num_negatives=0",): "trainer.num_negatives=0: must be an integer >= 1",
    ("trainer.weight_decay=-1",): "trainer.weight_decay=-1.0: must be a number >= 0",
    ("trainer.popularity_exponent=-1",): "trainer.popularity_exponent=-1.0: must be a number",
    ("trainer.sampling=uniform",): "trainer.sampling='uniform': must be one of interaction, user",
    ("trainer.negative_sampling=hard",): "trainer.negative_sampling='hard': must be one of",
    ("trainer.optimizer=adamw",): "trainer.optimizer='adamw': must be one of adam, sgd",
    ("trainer.protocol=test",): "trainer.protocol='test': must be one of validation, paper",
    ("trainer.on_nonfinite=ignore",): "trainer.on_nonfinite='ignore': must be one of stop, skip",
    ("trainer.metric=recall@30",): "trainer.metric='recall@30': is not evaluated; eval.metrics",
    ("trainer.metric=auc@20",): "trainer.metric='auc@20': is not evaluated",
    ("trainer.metric=recall",): "trainer.metric='recall': must be NAME@K",
    ("eval.ks=[0,20]",): "eval.ks=0: must be an integer >= 1",
    ("eval.ks=[]",): "eval.ks=[]: must list at least one cut-off",
    ("eval.metrics=[recall,auc]",): "eval.metrics='auc': must be one of hit_rate, map, mrr",
    ("eval.batch_size=0",): "eval.batch_size=0: must be an integer >= 1",
    ("seed=-1",): "seed=-1: Seed must be between 0 and 2**32 - 1",
    ("seed=4294967296",): "seed=4294967296: Seed must be between 0 and 2**32 - 1",
    ("threads=0",): "threads=0: must be an integer >= 1",
    ("device=gpu",): "device='gpu': must be auto, cpu, cuda or cuda:N",
    ("dataset.valid_fraction=0",): "dataset.valid_fraction=0: must be a number in (0, 1)",
    ("dataset.valid_fraction=1.0",): "dataset.valid_fraction=1.0: must be a number in (0, 1)",
    ("dataset.split_seed=-2",): "dataset.split_seed=-2: must be an integer between 0 and",
    ("+dataset.colour=red",): "dataset: DatasetSpec.__init__() got an unexpected keyword",
    ("+trainer.epoch=3",): "trainer.epoch: unknown key; the trainer keys are epochs,",
    ("model=simgcl", "model.head.temperature=0"): "model.head: InfoNCE temperature must be > 0",
    ("model=sgl", "model.head.negatives=some"): "model.head: negatives must be 'all' or",
    ("model=sgl", "augmenter.ratio=1.0"): "augmenter: edge dropout ratio must be in [0, 1)",
    ("model=sgl", "augmenter=nd", "augmenter.ratio=-0.1"): "node dropout ratio must be in [0, 1)",
    ("model=simgcl", "augmenter.eps=-0.1"): "augmenter: noise eps must be >= 0, got -0.1",
    ("loss=softmax", "loss.temperature=0"): "loss: softmax temperature must be > 0",
}
# what needs the data's sizes or the model's class: checked before the first epoch
BEFORE_EPOCH = {
    ("model.embedding_dim=0",): "model.embedding_dim must be an integer >= 1, got 0",
    ("model=lightgcn", "model.num_layers=-1"): "model.num_layers must be an integer >= 0, got -1",
    ("model=xsimgcl", "model.cl_layer=4"): "cl_layer must be in 1..3, got 4",
    ("eval.ks=[20,100]",): "eval.ks goes up to 100 but custom has only 60 items",
}
# wrong types and misspelt keys stop while Hydra composes
AT_COMPOSE = (
    "trainer.epochs=ten",
    "trainer.lr=fast",
    "trainer.resume=maybe",
    "eval.ks=[a]",
    "eval.batch_size=1.5",
    "trainer.epoch=3",
)


def compose_cfg(data_dir, *overrides):
    from hydra import compose

    return compose("config", overrides=[*BASE, f"dataset.path={data_dir}", *overrides])


@pytest.fixture
def guarded(monkeypatch):
    """Reading the data or running an epoch fails loudly: the check must come first."""
    import sslrec.run
    from sslrec.train import Trainer

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the configuration was checked")

    def no_epoch(self, epoch):
        raise AssertionError("an epoch ran before the configuration was checked")

    monkeypatch.setattr(Trainer, "train_epoch", no_epoch)
    return lambda: monkeypatch.setattr(sslrec.run, "load_data", no_data)


@pytest.mark.parametrize("overrides", list(BEFORE_DATA), ids=" ".join)
def test_bad_value_fails_before_the_data_is_read(
    hydra_conf, tiny_dataset_dir, tmp_path, guarded, overrides
):
    guarded()
    out = tmp_path / "run"
    with pytest.raises(ValueError) as info:
        run(compose_cfg(tiny_dataset_dir, *overrides), out)
    assert type(info.value).__name__ == "ConfigError"
    assert BEFORE_DATA[overrides] in str(info.value)
    assert not out.exists() or not any(out.iterdir())  # nothing written


@pytest.mark.parametrize("overrides", list(BEFORE_EPOCH), ids=" ".join)
def test_value_checked_against_the_data_fails_before_the_first_epoch(
    hydra_conf, tiny_dataset_dir, tmp_path, guarded, overrides
):
    out = tmp_path / "run"
    with pytest.raises(ValueError) as info:
        run(compose_cfg(tiny_dataset_dir, *overrides), out)
    assert BEFORE_EPOCH[overrides] in str(info.value)
    assert not (out / "config.yaml").exists()  # a fixed rerun needs no overwrite


@pytest.mark.parametrize("override", AT_COMPOSE)
def test_wrong_type_or_unknown_key_fails_while_composing(hydra_conf, tiny_dataset_dir, override):
    with pytest.raises(ConfigCompositionException, match=override.split("=")[0]):
        compose_cfg(tiny_dataset_dir, override)


def test_the_defaults_and_every_preset_pass(hydra_conf):
    """The checks refuse nothing a shipped config sets."""
    from pathlib import Path

    from hydra import compose

    from sslrec.__main__ import config_dir
    from sslrec.config import validate_run_config

    conf = Path(config_dir())
    for name in ["", *(f"+experiment={p.stem}" for p in (conf / "experiment").glob("*.yaml"))]:
        validate_run_config(compose("config", overrides=[name] if name else []))
    for model in (p.stem for p in (conf / "model").glob("*.yaml")):
        validate_run_config(compose("config", overrides=[f"model={model}"]))
    for loss in (p.stem for p in (conf / "loss").glob("*.yaml")):
        validate_run_config(compose("config", overrides=[f"loss={loss}"]))


def test_trainer_config_checks_python_callers_too():
    from sslrec.train import TrainerConfig

    with pytest.raises(ValueError, match=r"trainer.epochs=2.5: must be an integer >= 1"):
        TrainerConfig(epochs=2.5)
    with pytest.raises(ValueError, match=r"trainer.lr=nan: must be a finite number > 0"):
        TrainerConfig(lr=float("nan"))
