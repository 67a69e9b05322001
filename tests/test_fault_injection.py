"""Issue 17, fault injection: kill the command line at hypothesis-chosen epochs and phases
(inside the epoch, during the evaluation, between the record and its checkpoint, inside the
checkpoint write, after it), resume, and require exactly the uninterrupted run's outputs.

The kill is ``SSLREC_FAULT=PHASE@EPOCH`` (:mod:`sslrec.train.faults`): ``os._exit`` at that
point, with no cleanup, as ``kill -9`` would, but at a chosen place instead of a random time.
Each run is the command line's own entry point (``sslrec.__main__.cli``, Hydra included) in a
forked child of the test process: a separate process that can die, without paying the
interpreter's and torch's start-up for every run. SGL on the 40-user dataset, so that the
resumed run must also restore the torch generator that draws its views.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sslrec.train.faults import ENV, EXIT_CODE, PHASES

EPOCHS = 3
ARGS = (
    "dataset=custom",
    "logger=none",
    "model=sgl",
    "model.embedding_dim=16",
    f"trainer.epochs={EPOCHS}",
    "trainer.eval_every=1",
    "trainer.batch_size=64",
    "trainer.progress=false",
    "threads=1",
)


class Proc:
    """Exit status of a finished child."""

    def __init__(self, returncode: int) -> None:
        self.returncode = returncode


def run_cli(data_dir: Path, out: Path, *extra: str, fault: str | None = None) -> Proc:
    """``python -m sslrec ARGS...`` in a forked child; returns its exit status."""
    argv = ["sslrec", *ARGS, f"dataset.path={data_dir}", f"hydra.run.dir={out}", *extra]
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.environ.pop(ENV, None)
            if fault:
                os.environ[ENV] = fault
            sys.argv = argv
            from sslrec.__main__ import cli

            cli()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return Proc(os.waitstatus_to_exitcode(status))


def outputs(out: Path) -> dict:
    """What must not depend on a kill: test/valid metrics, selection, the records minus their
    timings, the exported embeddings."""
    results = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with np.load(out / "embeddings.npz", allow_pickle=False) as npz:
        embeddings = {k: npz[k].tolist() for k in npz.files}
    return {
        "results": {k: results[k] for k in ("status", "valid", "test", "best_epoch", "epochs_run")},
        "records": [{k: v for k, v in r.items() if "seconds" not in k} for r in records],
        "embeddings": embeddings,
    }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("faults") / "tiny"
    folder.mkdir()
    train, test = [], []
    for u in range(40):
        items = rng.choice(60, size=8, replace=False)
        train.append(" ".join(map(str, [u, *items[:6]])))
        test.append(" ".join(map(str, [u, *items[6:]])))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder


@pytest.fixture(scope="module")
def warm() -> None:
    """Import in the parent what every child would otherwise import again (torch's optimiser
    pulls in torch._dynamo, Hydra scans its plugins): seconds per run on a small machine."""
    import torch
    from hydra.core.plugins import Plugins

    import sslrec.__main__  # noqa: F401
    import sslrec.run  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    Plugins.instance()


@pytest.fixture(scope="module")
def uninterrupted(data_dir: Path, tmp_path_factory, warm) -> dict:
    out = tmp_path_factory.mktemp("full") / "run"
    proc = run_cli(data_dir, out)
    assert proc.returncode == 0
    return outputs(out)


@settings(
    max_examples=4,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(phase="record", epoch=2)  # the record written, its checkpoint not
@example(phase="checkpoint", epoch=1)  # inside the first checkpoint write
@given(phase=st.sampled_from(PHASES), epoch=st.integers(1, EPOCHS))
def test_kill_then_resume_equals_the_uninterrupted_run(
    data_dir, uninterrupted, tmp_path_factory, phase, epoch
):
    out = tmp_path_factory.mktemp(f"{phase}{epoch}") / "run"
    killed = run_cli(data_dir, out, fault=f"{phase}@{epoch}")
    assert killed.returncode == EXIT_CODE
    assert not (out / "results.json").exists()
    if phase == "checkpoint":
        assert list(out.glob(".checkpoint.pt.*.tmp"))  # the kill left its temporary file
    resumed = run_cli(data_dir, out, "trainer.resume=true")
    assert resumed.returncode == 0
    assert outputs(out) == uninterrupted
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
