"""Weights & Biases logging; it never hangs or fails a run."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class WandbLogger:
    """Logs records and the summary to wandb.

    Args:
        mode: ``offline`` (default; sync later with ``wandb sync``), ``online`` or ``disabled``.
            Always explicit: an unset mode with an API key present can block for minutes.
        project, entity, group, name, tags, notes: run metadata.
        run_config: the resolved run configuration (a plain dict).
        dir: where wandb writes its files (the run directory).
        init_timeout: seconds ``wandb.init`` may take before the run goes on without wandb.
        system_stats: sample CPU/GPU/memory in wandb's service process. Off by default: on a
            2-core machine that sampling competes with training.
    """

    def __init__(
        self,
        mode: str = "offline",
        project: str = "sslrec",
        entity: str | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        run_config: dict[str, Any] | None = None,
        dir: str | None = None,
        init_timeout: float = 30.0,
        system_stats: bool = False,
    ) -> None:
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode must be offline, online or disabled, got {mode!r}")
        self.run = None
        try:
            import wandb
            from omegaconf import OmegaConf

            # hydra's instantiate hands dict arguments over as DictConfig, which wandb cannot
            # copy ("first argument must be callable or None"): pass plain containers
            if OmegaConf.is_config(run_config):
                run_config = OmegaConf.to_container(run_config, resolve=True)
            if OmegaConf.is_config(tags):
                tags = OmegaConf.to_container(tags, resolve=True)

            self.run = wandb.init(
                mode=mode,
                project=project,
                entity=entity,
                group=group,
                name=name,
                tags=list(tags or []),
                notes=notes,
                config=run_config,
                dir=dir,
                reinit="finish_previous",
                settings=wandb.Settings(
                    init_timeout=init_timeout,
                    console="off",
                    silent=True,
                    x_disable_stats=not system_stats,
                ),
            )
            log.info("wandb run %s, group %s (%s)", name, group, mode)
        except Exception as exc:  # a dashboard problem must not cost the run
            log.warning("wandb disabled for this run, local logs continue: %s", exc)

    def log(self, record: dict[str, Any]) -> None:
        if self.run is not None:
            split = record.get("split", "eval")
            flat = {k: v for k, v in record.items() if k not in ("metrics", "losses", "split")}
            flat.update({f"loss/{k}": v for k, v in record.get("losses", {}).items()})
            flat.update({f"{split}/{k}": v for k, v in record.get("metrics", {}).items()})
            try:
                self.run.log(flat, step=int(record.get("epoch", 0)))
            except Exception as exc:
                self._give_up("log", exc)

    def summary(self, results: dict[str, Any]) -> None:
        if self.run is not None:
            try:
                for split in ("valid", "test"):
                    for key, value in (results.get(split) or {}).items():
                        self.run.summary[f"best/{split}/{key}"] = value
                self.run.summary["best_epoch"] = results.get("best_epoch")
            except Exception as exc:
                self._give_up("summary", exc)

    def finish(self) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            try:
                run.finish()
            except Exception as exc:
                log.warning("wandb finish failed, local logs are complete: %s", exc)

    def _give_up(self, what: str, exc: Exception) -> None:
        """A failing dashboard call stops wandb for the rest of the run, never the run."""
        log.warning("wandb %s failed, wandb stops for this run: %s", what, exc)
        self.finish()
