"""Hydra launch paths beyond joblib: submitit (local, and SLURM through a fake sbatch/srun/sacct)
and the Optuna sweeper (``+sweep=optuna_simgcl``, ``+sweep=optuna_sgl``).

The end-to-end tests run ``python -m sslrec --multirun ...`` on lastfm with one epoch, one
torch thread and no logger; the compose tests run nothing."""

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import compose_run_config

TINY = ["trainer.epochs=1", "logger=none", "eval.ks=[20]", "threads=1"]


def submitit_plugin():
    """Skips the test without hydra-submitit-launcher (the sweep extra)."""
    pytest.importorskip("submitit")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def optuna_plugin():
    """The Optuna sweeper's module (the test is skipped without hydra-optuna-sweeper)."""
    pytest.importorskip("optuna")
    return pytest.importorskip("hydra_plugins.hydra_optuna_sweeper._impl")


def sslrec_multirun(cwd: Path, sweep_dir: Path, *overrides: str, env=None, check=True):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "--multirun",
            *overrides,
            *TINY,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"WANDB_SILENT": "true"} | (env or {}),
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_finished(job: Path, seed: int) -> dict:
    """A job folder of a finished run: its config, metrics log and results."""
    assert yaml.safe_load((job / "config.yaml").read_text())["seed"] == seed
    assert (job / "metrics.jsonl").read_text().strip()
    assert not (job / "error.txt").exists()
    results = json.loads((job / "results.json").read_text())
    assert results["epochs_run"] == 1
    return results


def assert_failed(job: Path) -> None:
    error = (job / "error.txt").read_text()
    assert error.startswith("Traceback") and "Seed must be between" in error
    assert (job / "config.yaml").exists() and not (job / "results.json").exists()


# ---------------------------------------------------------------- composing, nothing runs


_compose = compose_run_config  # the config a run with these overrides sees


def test_slurm_preset(hydra_conf):
    submitit_plugin()
    cfg = _compose("hydra/launcher=slurm", "hydra.sweep.dir=/sweeps/x")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["partition"] is None  # the cluster's default partition
    assert launcher["gpus_per_node"] == 1 and launcher["nodes"] == 1
    assert launcher["tasks_per_node"] == 1 and launcher["cpus_per_task"] >= 1
    assert launcher["mem_gb"] > 0 and launcher["timeout_min"] >= 60
    assert launcher["array_parallelism"] > 1 and launcher["additional_parameters"] == {}
    assert launcher["submitit_folder"] == "/sweeps/x/.submitit/%j"
    assert cfg.device == "auto"  # cuda inside a job that got a GPU
    cfg = _compose(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "+hydra.launcher.additional_parameters.mail-type=END",
    )
    assert cfg.hydra.launcher.partition == "gpu"
    assert cfg.hydra.launcher.additional_parameters == {"mail-type": "END"}


def test_submitit_cpu_preset(hydra_conf):
    submitit_plugin()
    launcher = _compose("hydra/launcher=submitit_cpu").hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.LocalLauncher")
    assert launcher.cpus_per_task == 1 and launcher.gpus_per_node == 0
    assert 0 < launcher.timeout_min <= 30


# Each preset's search space: key -> (optuna distribution, low, high); and its fixed choices.
OPTUNA_PRESETS = {
    "optuna_simgcl": (
        {
            "model.ssl_weight": ("LogUniformDistribution", 0.01, 1.0),
            "model.head.temperature": ("UniformDistribution", 0.05, 0.5),
            "augmenter.eps": ("LogUniformDistribution", 0.01, 0.5),
        },
        {"model": "simgcl", "augmenter": "noise"},
    ),
    "optuna_sgl": (
        {
            "model.ssl_weight": ("LogUniformDistribution", 0.01, 1.0),
            "model.head.temperature": ("UniformDistribution", 0.1, 1.0),
            "augmenter.ratio": ("UniformDistribution", 0.05, 0.5),
        },
        {"model": "sgl", "augmenter": "ed"},
    ),
}


@pytest.mark.parametrize("name", sorted(OPTUNA_PRESETS))
def test_optuna_preset(hydra_conf, name):
    impl = optuna_plugin()
    space, choices = OPTUNA_PRESETS[name]
    cfg = _compose(f"+sweep={name}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and cfg.trainer.metric == "recall@20"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed is not None and sweeper.storage is None
    assert sweeper.n_trials > 0 and sweeper.n_jobs > 0 and sweeper.max_failure_rate == 1.0
    assert cfg.hydra.job.chdir is False
    assert sweeper.study_name == f"sslrec-{choices['model']}-lastfm"
    assert {k: cfg.hydra.runtime.choices[k] for k in choices} == choices
    dists, fixed = impl.create_params_from_overrides(
        [f"{k}={v}" for k, v in sweeper.params.items()]
    )
    assert all(choices[k] == v for k, v in fixed.items())  # fixed params: config choices
    assert set(dists) == set(space)
    for key, (kind, low, high) in space.items():
        assert type(dists[key]).__name__ == kind
        assert (dists[key].low, dists[key].high) == (low, high)
        default = OmegaConf.select(cfg, key)  # the key exists; its default lies in the space
        assert low <= default <= high
    # a trial's overrides compose into a runnable config with its own job folder
    trial = [f"{k}={low}" for k, (_, low, _) in space.items()] + [
        f"{k}={v}" for k, v in fixed.items()
    ]
    job = _compose(f"+sweep={name}", *trial, "hydra.job.num=7")
    for key, (_, low, _) in space.items():
        assert OmegaConf.select(job, key) == low
    assert str(job.hydra.sweep.subdir).startswith("7-")
    task = OmegaConf.masked_copy(job, [k for k in job if k != "hydra"])
    OmegaConf.to_container(task, resolve=True)


# ---------------------------------------------------------------- submitit, local executor


@pytest.fixture(scope="module")
def submitit_sweep(tmp_path_factory):
    """3 LightGCN jobs in separate submitit processes; seed=-1 fails (numpy rejects it)."""
    submitit_plugin()
    tmp = tmp_path_factory.mktemp("submitit")
    sweep_dir = tmp / "multirun"
    proc = sslrec_multirun(
        tmp, sweep_dir, "hydra/launcher=submitit_cpu", "model=lightgcn", "seed=1,2,-1", check=False
    )
    return proc, sweep_dir


def test_submitit_local_writes_every_job(submitit_sweep):
    proc, sweep_dir = submitit_sweep
    # one job failed: the sweep exits 1 after every job ran
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    mr = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
    assert mr["hydra"]["launcher"]["_target_"].endswith("LocalLauncher")
    for num, seed in ((0, 1), (1, 2)):
        assert_finished(sweep_dir / str(num), seed)
    # submitit's own folder: one per job, with its pickled result and logs
    folders = [p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    assert len(folders) == 3
    for p in folders:
        assert (p / f"{p.name}_0_result.pkl").exists()
        assert "Starting with JobEnvironment" in (p / f"{p.name}_0_log.out").read_text()


def test_submitit_local_failing_job_leaves_error_txt(submitit_sweep):
    proc, sweep_dir = submitit_sweep
    # one job failed: the sweep exits 1 after every job ran
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_failed(sweep_dir / "2")
    assert all((sweep_dir / num / "results.json").exists() for num in ("0", "1"))


# ---------------------------------------------------------------- submitit, SLURM (faked)

# Just enough SLURM for submitit: sbatch runs a copy of its script for each array task in the
# background (submitit moves the script and the job pickles after sbatch returns; its worker
# waits for the pickles), srun runs its command with the log paths expanded, sacct reports the
# tasks that ended (so a job that died without a result fails the sweep instead of hanging it).
FAKE_SBATCH = r"""#!/bin/bash
array_id=4242; script="$FAKE_SLURM_DIR/sbatch_script.sh"
cp "$1" "$script"
range=$(sed -n 's/^#SBATCH --array=\([0-9]*\)-\([0-9]*\).*/\1 \2/p' "$script")
read -r lo hi <<< "${range:-0 0}"
for i in $(seq "$lo" "$hi"); do
  (
    SLURM_JOB_ID=$((array_id + 1 + i)) SLURM_ARRAY_JOB_ID=$array_id SLURM_ARRAY_TASK_ID=$i \
    SLURM_NTASKS=1 SLURM_JOB_NUM_NODES=1 SLURM_NODEID=0 SLURM_PROCID=0 SLURM_LOCALID=0 \
    SLURM_JOB_NODELIST=localhost bash "$script"
    if [ $? -eq 0 ]; then state=COMPLETED; else state=FAILED; fi
    echo "${array_id}_$i|$state|localhost" >> "$FAKE_SLURM_DIR/sacct.txt"
  ) > /dev/null 2>&1 &
done
echo "Submitted batch job $array_id"
"""
FAKE_SRUN = r"""#!/bin/bash
out=/dev/null; err=/dev/null
while [[ "$1" == --* ]]; do
  case "$1" in --output) out="$2"; shift 2;; --error) err="$2"; shift 2;; *) shift;; esac
done
expand() { local p="${1//%A/$SLURM_ARRAY_JOB_ID}"; p="${p//%a/$SLURM_ARRAY_TASK_ID}"
           p="${p//%j/$SLURM_JOB_ID}"; echo "${p//%t/$SLURM_PROCID}"; }
exec "$@" >> "$(expand "$out")" 2>> "$(expand "$err")"
"""
FAKE_SACCT = """#!/bin/bash
echo 'JobID|State|NodeList'
cat "$FAKE_SLURM_DIR/sacct.txt" 2> /dev/null || true
"""


def test_slurm_launcher_with_fake_slurm(tmp_path):
    submitit_plugin()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("sacct", FAKE_SACCT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    sweep_dir = tmp_path / "multirun"
    sslrec_multirun(
        tmp_path,
        sweep_dir,
        "+sweep=sgl_vs_simgcl",
        "model=lightgcn",
        "seed=1,2",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(tmp_path)},
    )
    script = (tmp_path / "sbatch_script.sh").read_text()
    for flag in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--array=0-1%2",
        "--nodes=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=4",
        "--mem=32GB",
        "--time=720",
    ):
        assert f"#SBATCH {flag}\n" in script, script
    assert f"srun --unbuffered --output {sweep_dir}/.submitit/%A_%a/%A_%a_%t_log.out" in script
    for num, seed in ((0, 1), (1, 2)):
        job = sweep_dir / f"{num}-lightgcn-s{seed}"
        assert_finished(job, seed)
        hydra_cfg = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra_cfg["job"]["id"] == f"4242_{num}"  # ran as SLURM array task 4242_<num>
        logs = sweep_dir / ".submitit" / f"4242_{num}"
        assert (logs / f"4242_{num}_0_result.pkl").exists()
        log = (logs / f"4242_{num}_0_log.out").read_text()  # the job's stdout, via srun
        assert f"JobEnvironment(job_id=4242_{num}," in log and "epoch 1" in log


# ---------------------------------------------------------------- Optuna


@pytest.fixture(scope="module")
def optuna_sweep(tmp_path_factory):
    """3 SimGCL trials of +sweep=optuna_simgcl (TPE, seeded) in a narrowed search space, the
    study stored in optuna.db (a path relative to the launch directory)."""
    optuna_plugin()
    tmp = tmp_path_factory.mktemp("optuna")
    proc = sslrec_multirun(tmp, tmp / "multirun", *OPTUNA_RUN, check=False)
    return proc, tmp


OPTUNA_RUN = [
    "+sweep=optuna_simgcl",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.storage=sqlite:///optuna.db",
    "model.ssl_weight=tag(log,interval(0.05,0.5))",
    "augmenter.eps=interval(0.05,0.2)",
    "seed=1",
]


def _trial(job: Path) -> tuple[float, float, float]:
    cfg = yaml.safe_load((job / "config.yaml").read_text())
    assert cfg["model"]["_target_"] == "sslrec.models.SimGCL"
    return cfg["model"]["ssl_weight"], cfg["model"]["head"]["temperature"], cfg["augmenter"]["eps"]


def test_optuna_sweep_best_trial(optuna_sweep):
    proc, tmp = optuna_sweep
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp / "multirun"
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    params = best["best_params"]
    assert set(params) == {"model.ssl_weight", "model.head.temperature", "augmenter.eps"}
    assert 0.05 <= params["model.ssl_weight"] <= 0.5 and 0.05 <= params["augmenter.eps"] <= 0.2
    assert 0.05 <= params["model.head.temperature"] <= 0.5
    values, trials = {}, {}
    for num in range(3):
        job = sweep_dir / f"{num}-simgcl"
        values[num] = assert_finished(job, seed=1)["valid"]["recall@20"]
        trials[num] = _trial(job)
    assert len(set(trials.values())) == 3  # three different proposals
    assert best["best_value"] == pytest.approx(max(values.values()), abs=1e-9)
    winner = max(values, key=values.get)
    assert trials[winner] == pytest.approx(
        (params["model.ssl_weight"], params["model.head.temperature"], params["augmenter.eps"])
    )


def test_optuna_study_persists_in_sqlite(optuna_sweep):
    optuna = pytest.importorskip("optuna")
    proc, tmp = optuna_sweep
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    storage = f"sqlite:///{tmp / 'optuna.db'}"
    assert (tmp / "optuna.db").is_file()
    # the same command again resumes the study: one more trial, numbered 3. A new sampler seed,
    # or the seeded TPE's random start would propose trial 0's parameters again.
    resume = [*OPTUNA_RUN, "hydra.sweeper.n_trials=1", "hydra.sweeper.sampler.seed=1"]
    sslrec_multirun(tmp, tmp / "resumed", *resume)
    study = optuna.load_study(study_name="sslrec-simgcl-lastfm", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    jobs = [tmp / "multirun" / f"{num}-simgcl" for num in range(3)] + [tmp / "resumed" / "0-simgcl"]
    for trial, job in zip(trials, jobs, strict=True):
        results = json.loads((job / "results.json").read_text())
        assert trial.value == pytest.approx(results["valid"]["recall@20"], abs=1e-9)
        params = trial.params
        assert _trial(job) == pytest.approx(
            (params["model.ssl_weight"], params["model.head.temperature"], params["augmenter.eps"])
        )
    assert _trial(jobs[3]) not in {_trial(job) for job in jobs[:3]}
    best = yaml.safe_load((tmp / "resumed" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(t.value for t in trials))  # over all 4


def test_optuna_failing_trial_is_marked_failed(tmp_path):
    """Of 2 trials one gets seed=-1 (TPE's first random draws with sampler seed 0 in optuna
    2.10: -1, then 1): it must become a FAILED trial and the study must go on."""
    optuna_plugin()
    sweep_dir = tmp_path / "multirun"
    proc = sslrec_multirun(
        tmp_path,
        sweep_dir,
        "+sweep=optuna_simgcl",
        "seed=choice(1,-1)",
        "model.ssl_weight=0.1",
        "model.head.temperature=0.2",
        "augmenter.eps=0.1",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=0",
        check=False,
    )
    seeds = {
        num: yaml.safe_load((sweep_dir / f"{num}-simgcl" / "config.yaml").read_text())["seed"]
        for num in range(2)
    }
    assert sorted(seeds.values()) == [-1, 1], seeds  # the draw this test relies on
    failed = next(num for num, seed in seeds.items() if seed == -1)
    assert_failed(sweep_dir / f"{failed}-simgcl")
    assert_finished(sweep_dir / f"{1 - failed}-simgcl", seed=1)
    # one job failed: the sweep exits 1 after every job ran
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_params"] == {"seed": 1}
    assert not math.isnan(best["best_value"])
