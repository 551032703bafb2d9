"""Test-time modality drop (mmbench.robustness): the dropped items by hand, p = 0 equal to
the plain evaluation, p = 1 equal to the trained model rebuilt on features where the
modality is missing for every item, one learned-token and one dropping model on the same
items, the runner's record block and the CLI's options."""
import copy
import json

import numpy as np
import pytest
import torch

from mmbench.check import temporary_home
from mmbench.errors import ConfigError
from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.features.store import Feature
from mmbench.protocol import Protocol
from mmbench.robustness import DropSpec, dropped_items, evaluate_drops, keys_for
from mmbench.runner import ModelSpec, dataset_features, run_one
from mmbench.synthetic import make_synthetic

PROTOCOL = Protocol(metrics=("ndcg@10", "recall@10/cold"), main_metric="ndcg@10")
FAST = {"epochs": 3, "batch_size": 256, "lr": 0.01, "embedding_dim": 8}


@pytest.fixture(scope="module")
def synth():
    torch.set_num_threads(1)
    with temporary_home():
        yield make_synthetic(n_users=60, n_items=80, per_user=10, seed=4)


def _fit(name, ds, **params):
    spec = ModelSpec.resolve(name)
    given = {k: v for k, v in {**FAST, **params}.items() if k in spec.cls.param_names()}
    return spec.cls(**spec.params(given)).fit(ds.train_data(), dataset_features(spec.cls, ds, None),
                                                             seed=0)


def _test_metrics(model, ds):
    return evaluate_ranking(model.score, ds, "test", PROTOCOL.ranking_metrics, beyond_accuracy=False,
                            mask_valid_at_test=True).metrics


def _all_missing(model, ds, key):
    """The trained model rebuilt on features where ``key`` is missing for every item: a fresh
    module from those features, the trained parameters and buffers loaded except the
    presence masks (bool buffers), which stay all False for ``key`` (a model with nothing
    trained, ItemKNN-CBF, is fitted again on those features)."""
    feats = dict(dataset_features(type(model), ds, None))
    f = feats[key]
    feats[key] = Feature(key, np.zeros_like(f.values), np.zeros(len(f.mask), dtype=bool), "gone", {})
    if not hasattr(model, "module_"):
        return copy.deepcopy(model).fit(ds.train_data(), feats, seed=0)
    other = copy.copy(model)  # build() reassigns what it makes (a deep copy cannot copy sparse CSR graphs)
    if hasattr(other, "embedding_cache_"):
        other.embedding_cache_ = type(model.embedding_cache_)()
    module = other.build(ds.train_data(), feats)
    state = {k: v for k, v in model.module_.state_dict().items() if v.dtype != torch.bool}
    module.load_state_dict(state, strict=False)
    other.module_ = module
    return other


def test_dropped_items_are_a_seeded_nested_prefix():
    order = np.random.default_rng([7, 0xD809]).permutation(10)
    assert dropped_items(10, 0.25, 7).tolist() == sorted(order[:3].tolist())  # 2.5 rounds up
    assert dropped_items(10, 0.0, 7).size == 0 and dropped_items(10, 1.0, 7).tolist() == list(range(10))
    assert set(dropped_items(10, 0.25, 7)) <= set(dropped_items(10, 0.5, 7))
    assert dropped_items(10, 0.5, 7).tolist() != dropped_items(10, 0.5, 8).tolist()


def test_keys_for_a_modality_or_a_key():
    read = ["audio/a", "audio/b", "text/t"]
    assert keys_for("audio", read) == ["audio/a", "audio/b"] and keys_for("text/t", read) == ["text/t"]
    assert keys_for("image", read) == []


LABELS = {"embed": "learned token (missing = 'embed')", "drop": "dropped (missing = 'drop')",
          "impute": "imputed from the other modalities (missing = 'impute')"}


@pytest.mark.parametrize("name,missing", [("late-fusion", "embed"), ("late-fusion", "drop"), ("late-fusion", "impute"),
                                          ("amr", None), ("adversarial-alignment", None), ("itemknn-cbf", None),
                                          ("freedom", None), ("bm3", None)])
def test_p0_is_the_plain_evaluation_and_p1_the_modality_missing_everywhere(synth, name, missing):
    model = _fit(name, synth, **({"missing": missing} if missing else {}))
    plain = _test_metrics(model, synth)
    key = "text/synthetic"
    gone = _test_metrics(_all_missing(model, synth, key), synth)
    params = {"missing": missing} if missing else {}
    block = evaluate_drops(model, DropSpec(("text",), (0.0, 0.5, 1.0), seed=3), synth, PROTOCOL, device="cpu",
                           params=params, read=sorted(dataset_features(type(model), synth, None)))
    (res,) = block["results"]
    assert res["features"] == [key]
    at = {s["share"]: s for s in res["shares"]}
    for m in plain:
        assert at[0.0]["metrics"][m] == round(float(plain[m]), 8)
        assert at[1.0]["metrics"][m] == round(float(gone[m]), 8)
    assert at[0.5]["dropped"] == round(0.5 * synth.n_items)
    if missing:
        assert block["missing_rows"] == LABELS[missing]
    if name == "bm3":  # its scores read no content: flat by construction
        assert at[1.0]["metrics"] == at[0.0]["metrics"]
    else:
        assert at[1.0]["metrics"] != at[0.0]["metrics"]
    assert _test_metrics(model, synth) == plain  # the masks (or the rebuilt graph) are restored after the drop


def test_an_id_only_model_and_an_unread_modality_are_skipped_with_the_reason(synth):
    pop = _fit("pop", synth)
    block = evaluate_drops(pop, DropSpec(("text",)), synth, PROTOCOL, device="cpu", params={}, read=[])
    assert block["skipped"] == "Pop reads no item content" and "results" not in block
    model = _fit("content-cosine", synth)
    read = sorted(dataset_features(type(model), synth, None))
    block = evaluate_drops(model, DropSpec(("video", "text")), synth, PROTOCOL, device="cpu", params={}, read=read)
    assert [r["key"] for r in block["results"]] == ["text"]
    assert block["skipped_keys"][0]["key"] == "video"


def test_the_run_record_carries_the_block_and_a_rerun_adds_it(synth, tmp_path):
    spec = DropSpec(("text",), (0.0, 1.0), seed=1)
    rec, path, status = run_one("late-fusion", synth, params=FAST, protocol=PROTOCOL, results=tmp_path)
    assert status == "done" and "robustness" not in rec
    rec, _, status = run_one("late-fusion", synth, params=FAST, protocol=PROTOCOL, results=tmp_path, robustness=spec)
    assert status == "done" and spec.matches(rec["robustness"])  # asked for a block the record lacked: run again
    p0 = rec["robustness"]["results"][0]["shares"][0]["metrics"]
    assert p0 == {m: v for m, v in rec["metrics"]["test"].items() if m in p0}
    assert json.loads(path.read_text())["robustness"] == rec["robustness"]
    assert run_one("late-fusion", synth, params=FAST, protocol=PROTOCOL, results=tmp_path, robustness=spec)[2] == \
        "skipped"


@pytest.mark.parametrize("keys,shares,match", [
    ((), (0.0,), "keys must be distinct"),
    (("text", "text"), (0.0,), "keys must be distinct"),
    (("text",), (0.0, 1.5), r"shares must be distinct numbers in \[0, 1\]"),
    (("text",), (), r"shares must be distinct numbers in \[0, 1\]"),
])
def test_bad_specs(keys, shares, match):
    with pytest.raises(ConfigError, match=match):
        DropSpec(keys, shares)


def test_unknown_name_is_named():
    with pytest.raises(ConfigError, match="cannot drop 'image'"):
        DropSpec(("image",)).check(["text/a", "audio/b"])
    DropSpec(("text", "audio/b")).check(["text/a", "audio/b"])


def test_every_content_model_declares_how_it_treats_a_missing_row():
    from mmbench import registry
    from mmbench.models.base import declared_modalities
    from mmbench.robustness import missing_handling

    said = {}
    for name in registry.entries("models"):
        spec = ModelSpec.resolve(name)
        if declared_modalities(spec.cls)[2]:
            said[name] = missing_handling(spec.cls, spec.params({}))
    assert len(said) >= 15
    vague = {n: s for n, s in said.items() if not s.startswith(("learned token", "dropped", "imputed"))}
    assert not vague
    assert said["early-fusion"] == "learned token (missing = 'embed')"
