"""Sweep presets (``+sweep=NAME``), the joblib launcher, per-job failures, wandb names/groups."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class
from omegaconf import OmegaConf, open_dict

from sslrec.__main__ import config_dir
from sslrec.naming import run_name
from sslrec.runtime import launcher_threads, sweep_group
from tests.conftest import compose_run_config

# preset -> (number of jobs, swept keys besides seed)
PRESETS = {
    "sgl_vs_simgcl": (12, ["model"]),
    "sgl_augmenters": (9, ["model", "augmenter"]),
    "ssl_weight": (15, ["model", "model.ssl_weight"]),
    "temperature": (15, ["model", "model.head.temperature"]),
    "noise_eps": (15, ["model", "augmenter.eps"]),
    "layers": (18, ["model", "model.num_layers"]),
    "layer0": (18, ["model", "model.include_layer0"]),
    "cl_only": (12, ["model", "loss.weight"]),
    "losses": (60, ["model", "loss"]),
    "zoo": (36, ["model"]),
}


_compose = compose_run_config  # the config a run with these overrides sees


def _jobs(cfg, *cli):
    """The sweeper's expansion: preset params, then command-line sweeps (which win)."""
    params = {k: str(v) for k, v in cfg.hydra.sweeper.params.items()}
    for item in cli:
        key, value = item.split("=", 1)
        params[key] = value
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_presets_are_all_listed():
    names = {p.stem for p in (Path(config_dir()) / "sweep").glob("*.yaml")}
    # the Optuna presets search intervals, tested in tests/test_launchers.py
    assert names == set(PRESETS) | {"optuna_simgcl", "optuna_sgl"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_expands_to_valid_jobs(hydra_conf, name):
    n_jobs, keys = PRESETS[name]
    cfg = _compose(f"+sweep={name}")
    assert cfg.hydra.job.chdir is False
    assert set(cfg.hydra.sweeper.params) == {*keys, "seed"}
    jobs = _jobs(cfg)
    assert len(jobs) == n_jobs
    assert len({tuple(sorted(j)) for j in jobs}) == n_jobs
    subdirs, names = set(), set()
    for num, job in enumerate(jobs):
        job_cfg = _compose(f"+sweep={name}", *job)
        with open_dict(job_cfg):
            job_cfg.hydra.job.num = num
        subdirs.add(str(job_cfg.hydra.sweep.subdir))
        names.add(run_name(job_cfg))
        # the swept value reached the composed config
        for override in job:
            key, value = override.split("=", 1)
            if key == "model":
                assert job_cfg.hydra.runtime.choices.model == value
            elif key in ("augmenter", "loss"):
                assert job_cfg.hydra.runtime.choices[key] == value
            else:
                assert str(OmegaConf.select(job_cfg, key)) == value
        model_cls = get_class(job_cfg.model._target_)
        if {"augmenter", "noise"} & set(job_cfg.model):  # augmented SSL models carry theirs
            assert get_class(job_cfg.augmenter._target_)
        assert model_cls.__module__.startswith("sslrec.models")
        task = OmegaConf.masked_copy(job_cfg, [k for k in job_cfg if k != "hydra"])
        OmegaConf.to_container(task, resolve=True)  # every interpolation resolves
    assert len(subdirs) == n_jobs and len(names) == n_jobs  # readable and distinct


def test_sgl_vs_simgcl_pairs_each_model_with_its_augmenter(hydra_conf):
    augs = {}
    for job in _jobs(_compose("+sweep=sgl_vs_simgcl"), "seed=1"):
        cfg = _compose("+sweep=sgl_vs_simgcl", *job)
        augs[cfg.hydra.runtime.choices.model] = cfg.get("augmenter", {}).get("_target_")
    assert augs == {
        "lightgcn": None,
        "sgl": "sslrec.augment.EdgeDropout",
        "simgcl": "sslrec.augment.UniformNoise",
        "xsimgcl": "sslrec.augment.UniformNoise",
    }


def test_command_line_narrows_a_preset(hydra_conf):
    jobs = _jobs(_compose("+sweep=sgl_vs_simgcl"), "model=lightgcn,sgl", "seed=1")
    assert sorted(jobs) == [["model=lightgcn", "seed=1"], ["model=sgl", "seed=1"]]


def test_run_name(hydra_conf):
    assert run_name(_compose("model=simgcl", "seed=1")) == (
        "simgcl-noise-lam0.1-eps0.1-t0.2-k3-lastfm-s1"
    )
    assert run_name(_compose("model=sgl", "augmenter=nd", "model.ssl_weight=0.5", "seed=2")) == (
        "sgl-nd-lam0.5-r0.1-t0.2-k3+e0-lastfm-s2"
    )
    assert run_name(_compose("model=xsimgcl", "augmenter=gaussian", "seed=3")) == (
        "xsimgcl-gaussian-lam0.05-eps0.1-t0.15-cl1-k3-lastfm-s3"
    )
    assert run_name(_compose("model=lightgcn", "model.num_layers=2", "seed=1")) == (
        "lightgcn-k2+e0-lastfm-s1"
    )
    assert run_name(_compose("model=mf", "seed=1")) == "mf-lastfm-s1"
    assert run_name(_compose("model=simgcl", "loss.weight=0", "seed=1")) == (
        "simgcl-noise-lam0.1-bpr0-eps0.1-t0.2-k3-lastfm-s1"
    )
    # a loss other than BPR is named after the model (and its weight when it is not 1)
    assert run_name(_compose("model=mf", "loss=hinge", "seed=1")) == "mf-hinge-lastfm-s1"
    assert run_name(_compose("model=sgl", "loss=softmax", "loss.weight=0.5", "seed=1")) == (
        "sgl-ed-softmax-lam0.1-softmax0.5-r0.1-t0.2-k3+e0-lastfm-s1"
    )


def test_sweep_group(hydra_conf):
    where = "hydra.sweep.dir=multirun/2026-01-02/03-04-05"
    multi = _compose("+sweep=ssl_weight", where, "hydra.mode=MULTIRUN")
    assert sweep_group("mine") == "mine"  # logger.group
    HydraConfig.instance().cfg = None
    assert sweep_group(None) is None  # no hydra runtime: a plain call
    try:
        HydraConfig.instance().set_config(multi)
        assert sweep_group(None) == "ssl_weight-2026-01-02_03-04-05"
        assert sweep_group("mine") == "mine"
        HydraConfig.instance().set_config(_compose(where, "hydra.mode=MULTIRUN"))
        assert sweep_group(None) == "sslrec-2026-01-02_03-04-05"  # no preset: the job name
        HydraConfig.instance().set_config(_compose("+sweep=ssl_weight", "hydra.mode=RUN"))
        assert sweep_group(None) is None  # single runs stay ungrouped
    finally:
        HydraConfig.instance().cfg = None


def test_launcher_threads(hydra_conf, monkeypatch):
    """joblib: cores // n_jobs (at least 1); submitit: cpus_per_task; basic launcher: None."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cases = {
        ("hydra/launcher=joblib_local",): 4,
        ("hydra/launcher=joblib", "hydra.launcher.n_jobs=3"): 2,
        ("hydra/launcher=joblib", "hydra.launcher.n_jobs=16"): 1,
        ("hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"): 1,
        (): None,
    }
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None:
        cases[("hydra/launcher=slurm",)] = 4
        cases[("hydra/launcher=submitit_cpu", "hydra.launcher.cpus_per_task=3")] = 3
    assert launcher_threads() is None  # no hydra runtime
    try:
        for overrides, expected in cases.items():
            HydraConfig.instance().set_config(_compose(*overrides))
            assert launcher_threads() == expected, overrides
    finally:
        HydraConfig.instance().cfg = None


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    """4 jobs on lastfm, 2 at a time with 1 torch thread each; seed=-1 fails (numpy rejects it)."""
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir = tmp / "multirun"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "--multirun",
            "+sweep=sgl_vs_simgcl",
            "hydra/launcher=joblib_local",
            "threads=1",
            "model=lightgcn,sgl",
            "seed=1,-1",
            "trainer.epochs=1",
            "logger.mode=offline",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"WANDB_SILENT": "true"},
    )
    return proc, sweep_dir


def test_joblib_sweep_writes_every_job(joblib_sweep):
    proc, sweep_dir = joblib_sweep
    # one job failed: the sweep exits 1 after every job ran
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    mr = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
    assert mr["hydra"]["launcher"]["n_jobs"] == 2 and mr["threads"] == 1
    groups = set()
    for name, model in (("0-lightgcn-s1", "lightgcn"), ("2-sgl-s1", "sgl")):
        job = sweep_dir / name
        cfg = yaml.safe_load((job / "config.yaml").read_text())
        assert cfg["seed"] == 1 and cfg["threads"] == 1
        assert cfg["model"]["_target_"].lower().endswith(model)
        assert (job / "metrics.jsonl").read_text().strip()
        res = json.loads((job / "results.json").read_text())
        assert res["epochs_run"] == 1 and res["threads"] == 1
        assert not (job / "error.txt").exists()
        # the wandb offline run exists and carries the sweep's shared group
        log_lines = [
            ln for ln in (job / "sslrec.log").read_text().splitlines() if "wandb run" in ln
        ]
        assert len(log_lines) == 1, (job / "sslrec.log").read_text()
        group = log_lines[0].split("group ")[1].split(" ")[0]
        groups.add(group)
        (wandb_file,) = (job / "wandb").glob("offline-run-*/run-*.wandb")
        assert group.encode() in wandb_file.read_bytes()
    assert groups == {"sgl_vs_simgcl-sweep0_multirun"}


def test_failing_job_leaves_error_txt_and_others_finish(joblib_sweep):
    proc, sweep_dir = joblib_sweep
    # one job failed: the sweep exits 1 after every job ran
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("1-lightgcn-s-1", "3-sgl-s-1"):
        job = sweep_dir / name
        error = (job / "error.txt").read_text()
        assert error.startswith("Traceback") and "Seed must be between" in error
        assert (job / "config.yaml").exists() and not (job / "results.json").exists()
    assert (sweep_dir / "0-lightgcn-s1" / "results.json").exists()
    assert (sweep_dir / "2-sgl-s1" / "results.json").exists()
