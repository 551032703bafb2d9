"""``mmbench run``: train, evaluate and record one model on one dataset."""
from __future__ import annotations

from pathlib import Path

import click

from .app import parse_params


@click.command()
@click.option("-m", "--model", "model", required=True, help="Registered model name or path/file.py:Class.")
@click.option("-d", "--dataset", "dataset", required=True, help="Dataset card name (see `datasets list`).")
@click.option("--seed", "seeds", type=int, multiple=True, default=(0,), show_default=True, help="Repeatable.")
@click.option("-p", "--param", "params", multiple=True, help="Hyper-parameter key=value (repeatable).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results folder (default ./results).")
@click.option("--suite", "suite_name", default="adhoc", show_default=True, help="Suite label for the records.")
@click.option("--feature", "features", multiple=True, help="Feature key to give the model (default: all).")
@click.option("--force", is_flag=True, help="Re-run even if a record exists.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--metric", "metrics", multiple=True,
              help="Metric of the protocol, e.g. recall@20 or ndcg@20/tail (repeatable; default: the standard set).")
@click.option("--main-metric", default=None, help="Metric that early stopping and selection use (default ndcg@10).")
@click.option("--mask-valid-at-test/--no-mask-valid-at-test", default=None,
              help="Whether test ranking also excludes validation items (default: yes; MMRec's protocol: no).")
@click.option("--rating-metric", "rating_metrics", multiple=True, help="Rating metric (repeatable; default rmse, mae).")
@click.option("--drop-modality", "drop", multiple=True,
              help="Feature key or modality to remove at test time for a seeded share of items (repeatable).")
@click.option("--drop-share", "drop_share", default=None,
              help="Comma-separated shares of items that lose it (default 0,0.25,0.5,1).")
def run(model, dataset, seeds, params, device, results, suite_name, features, force, resume, metrics, main_metric,
        mask_valid_at_test, rating_metrics, drop, drop_share):
    """Train MODEL on DATASET, evaluate, write run records. The protocol is the default one
    unless the options set its knobs as a suite's [protocol] does (recorded in each record).
    A failed earlier run of the same job is kept beside as history and run again."""
    from ..data.cards import find_card
    from ..data.prepare import prepare as _prepare
    from ..errors import ConfigError
    from ..names import check_name
    from ..paths import default_results_dir
    from ..protocol import Protocol
    from ..robustness import DEFAULT_SHARES, DropSpec, robustness_lines
    from ..runner import ModelSpec, run_one

    check_name(suite_name, "--suite")
    if drop_share is not None and not drop:
        raise ConfigError("--drop-share needs --drop-modality", hint="e.g. --drop-modality text --drop-share 0,0.5,1")
    drops = DropSpec(drop, DropSpec.parse_shares(drop_share) if drop_share else DEFAULT_SHARES) if drop else None
    knobs = {"metrics": list(metrics), "main_metric": main_metric, "mask_valid_at_test": mask_valid_at_test,
             "rating_metrics": list(rating_metrics)}
    protocol = Protocol.from_dict({k: v for k, v in knobs.items() if v not in (None, [])})
    if model.endswith(".py") or ".py:" in model:
        click.echo(f"warning: {model.partition(':')[0]} is a file, not an installed plugin: running its local "
                   "code", err=True)
    spec = ModelSpec.resolve(model)
    given = parse_params(params)
    spec.params(given)  # unknown parameter -> error before preparing anything
    ds = _prepare(find_card(dataset))
    results = results or default_results_dir()
    for seed in seeds:
        rec, path, status = run_one(spec, ds, params=given, seed=seed, device=device, protocol=protocol,
                                    results=results, suite=suite_name, force=force,
                                    feature_keys=list(features) or None, resume=resume, robustness=drops)
        if status == "busy":
            click.echo(f"seed {seed}: another process is running this job ({path})")
            continue
        t = rec["metrics"].get("test", {})
        shown = "  ".join(f"{k}={t[k]:.4f}" for k in dict.fromkeys(("recall@10", "ndcg@10", "rmse",
                                                                     protocol.main_metric)) if k in t)
        click.echo(f"seed {seed}: {status}  {shown}  -> {path}")
        for line in robustness_lines(rec.get("robustness"), rec["protocol"]["main_metric"]):
            click.echo(f"  {line}")
