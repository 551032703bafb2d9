"""The negative sampler re-checks only redrawn positions: the draws must be exactly those of
re-checking the whole batch each round (same seed, same negatives), incl. the exact
fallback for users who saw almost every item."""
import numpy as np
import torch

from mmbench.models.training import NegativeSampler


def _whole_batch_sampler(s: NegativeSampler, users, generator, tries=20):
    """The original algorithm: every round re-checks the whole batch."""
    neg = torch.randint(s.n_items, users.shape, generator=generator)
    for _ in range(tries):
        bad = s.is_positive(users, neg)
        if not bad.any():
            break
        neg[bad] = torch.randint(s.n_items, (int(bad.sum()),), generator=generator)
    bad = s.is_positive(users, neg)
    for k in torch.nonzero(bad).flatten().tolist():
        u = int(users[k])
        seen = set((s.keys[(s.keys >= u * s.n_items) & (s.keys < (u + 1) * s.n_items)] - u * s.n_items).tolist())
        choices = torch.tensor([i for i in range(s.n_items) if i not in seen])
        if len(choices):
            neg[k] = choices[torch.randint(len(choices), (1,), generator=generator)]
    return neg


def test_same_negatives_as_rechecking_the_whole_batch():
    rng = np.random.default_rng(0)
    n_items = 30
    rows = []
    for u in range(40):
        k = 29 if u % 10 == 0 else rng.integers(1, 20)  # every 10th user saw 29 of 30 items
        rows += [(u, i) for i in rng.permutation(n_items)[:k]]
    user, item = np.array(rows).T
    s = NegativeSampler(user, item, n_items)
    users = torch.as_tensor(np.repeat(np.arange(40), 25))
    for seed in range(5):
        a = s.sample(users, torch.Generator().manual_seed(seed), tries=3)
        b = _whole_batch_sampler(s, users, torch.Generator().manual_seed(seed), tries=3)
        assert torch.equal(a, b), seed
        assert not s.is_positive(users, a).any()
