"""``mmbench parity``: our model against a packaged peer's implementation on the same split."""
from __future__ import annotations

from pathlib import Path

import click

from .app import parse_params


@click.command()
@click.option("-m", "--model", "model", required=True, help="Registered model name (an unknown one lists what the peer covers).")
@click.option("-d", "--dataset", "dataset", default=None, help="Dataset card name (default: the suite's).")
@click.option("--peer", type=click.Choice(["recbole", "cornac"]), required=True, help="The peer library.")
@click.option("--suite", "suite_path", type=click.Path(path_type=Path), default=None,
              help="Take dataset, features and protocol from this suite; write to <suite>/parity/.")
@click.option("--seed", "seeds", type=int, multiple=True, default=(0, 1, 2), show_default=True, help="Repeatable.")
@click.option("-p", "--param", "params", multiple=True, help="Our hyper-parameter key=value (mapped to the peer's).")
@click.option("--feature", "features", multiple=True, help="Feature key to give both (default: the suite's, or all).")
@click.option("--peer-features", type=click.Choice(["standard", "raw"]), default=None,
              help="Content features the peer gets: z-scored per column or the stored values (default: preprocessed "
                   "as our model's `features` parameter says).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] (both sides).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Parity record (default: <suite>/parity/<model>-<peer>.json, else results/parity/<dataset>/).")
def parity(model, dataset, peer, suite_path, seeds, params, features, peer_features, device, out):
    """Run MODEL and the PEER's implementation of it on the same prepared split, scored by
    mmbench's evaluator with the same masking, metrics and early stopping on validation,
    on every seed; print both means ± std, the gap and whether it is within seed noise."""
    from ..io import atomic_write_text
    from ..parity.adapters import mapping
    from ..parity.driver import run_parity
    from ..parity.report import load_parity, parity_path, readme_text, summary_text, to_json
    from ..runner import ModelSpec

    given = parse_params(params)
    spec = ModelSpec.resolve(model)
    mapping(peer, spec.name, spec.params(given))  # a model the peer lacks, or a bad value: refused before any data
    ds, protocol, keys, suite_name, folder = _setup(dataset, suite_path)
    rec = run_parity(model, ds, peer, seeds=seeds, params=given, protocol=protocol,
                     feature_keys=list(features) or keys, device=device, peer_features=peer_features,
                     suite=suite_name, log=click.echo)
    path = out or parity_path(folder, rec["model"], peer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_json(rec))
    if suite_name is not None and out is None:  # the suite's parity table, with this record
        atomic_write_text(path.parent / "README.md", readme_text(load_parity(folder), suite_name))
    click.echo("\n" + summary_text(rec) + f"\n-> {path}")


def _setup(dataset: str | None, suite_path: Path | None):
    """(prepared dataset, protocol, feature keys, suite name, output folder) from the options."""
    from ..data.cards import find_card
    from ..data.prepare import prepare
    from ..errors import ConfigError
    from ..paths import default_results_dir

    if suite_path is None:
        if dataset is None:
            raise ConfigError("give -d DATASET or --suite PATH")
        ds = prepare(find_card(dataset))
        return ds, None, None, None, default_results_dir() / "parity" / ds.name
    from ..suite.definition import load_suite

    suite = load_suite(suite_path)
    if dataset is not None and dataset != suite.dataset["name"]:
        raise ConfigError(f"-d {dataset} but the suite is on {suite.dataset['name']}", where=str(suite.path))
    return suite.prepare(), suite.protocol, suite.dataset.get("features"), suite.name, suite.folder
