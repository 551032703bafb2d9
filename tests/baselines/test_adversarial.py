"""Adversarial alignment hides which modality an embedding came from."""

import numpy as np
import pytest
import torch
from mmbench_baselines.adversarial import AdversarialAlignment
from mmbench_baselines.pop import Pop

from .common import ndcg


def modality_probe_accuracy(reps: dict, masks: dict, train: np.ndarray, test: np.ndarray) -> float:
    """Held-out modality classifier: logistic regression on the (embedding, modality) pairs of
    the ``train`` items' present rows, accuracy on those of the ``test`` items."""
    keys = sorted(reps)

    def xy(items):
        xs, ys = [], []
        for label, k in enumerate(keys):
            rows = items[masks[k][items]]
            xs.append(reps[k][0][rows])
            ys.append(torch.full((len(rows),), float(label)))
        return torch.cat(xs), torch.cat(ys)

    x_tr, y_tr = xy(train)
    x_te, y_te = xy(test)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    clf = torch.nn.Linear(x_tr.shape[1], 1)
    opt = torch.optim.LBFGS(clf.parameters(), max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(clf((x_tr - mu) / sd).squeeze(1), y_tr)
        loss = loss + 1e-3 * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((clf((x_te - mu) / sd).squeeze(1) > 0).float() == y_te).float().mean())


@pytest.mark.slow
def test_adversarial_alignment_hides_the_modality(planted):
    """Text and image embeddings of the same items in the shared space: a held-out linear
    classifier tells them apart perfectly without the adversary and much worse with it."""
    ds, feats, _ = planted
    items = np.random.default_rng(0).permutation(ds.n_items)
    train, test = items[: ds.n_items // 2], items[ds.n_items // 2:]
    masks = {k: f.mask for k, f in feats.items()}
    kw = dict(lr=1e-3, batch_size=256, epochs=40)  # no early stopping: probe the end of the game
    plain = AdversarialAlignment(adv_weight=0.0, **kw).fit(ds.train_data(), feats, seed=0)
    aligned = AdversarialAlignment(adv_weight=1.0, **kw).fit(ds.train_data(), feats, seed=0)
    acc_plain = modality_probe_accuracy(plain.modality_representations(), masks, train, test)
    acc_aligned = modality_probe_accuracy(aligned.modality_representations(), masks, train, test)
    assert acc_plain > 0.95, acc_plain
    assert acc_aligned < acc_plain - 0.2, (acc_plain, acc_aligned)
    # and it still recommends as well as without the adversary
    assert ndcg(aligned, ds) > max(ndcg(Pop().fit(ds.train_data()), ds) + 0.1, ndcg(plain, ds) - 0.05)
