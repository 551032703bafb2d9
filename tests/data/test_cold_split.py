"""The ``cold_items`` split: cold items never in train, valid's and test's cold items apart,
the shares, seeded determinism, warm items split exactly as their own method splits them,
the manifest's cold list and clear errors for a bad split table."""
import numpy as np
import pytest

from mmbench.data.cards import find_card, load_card
from mmbench.data.prepare import prepare
from mmbench.data.splits import TEST, TRAIN, VALID, split_cold_items, split_random_loo, split_random_ratio
from mmbench.errors import ConfigError, DataError

from ..helpers import planted_rows, write_card, write_inter

SPLIT = {"method": "cold_items", "cold_share": 0.2, "cold_valid_share": 0.5, "warm": "random_ratio",
         "ratios": [0.8, 0.1, 0.1], "seed": 5}
CARD_SPLIT = ('method = "cold_items"\ncold_share = 0.2\ncold_valid_share = 0.5\nwarm = "random_ratio"\n'
              'ratios = [0.8, 0.1, 0.1]\nseed = 5')


def _data(n_users=50, n_items=40, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), per_user)
    item = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return user, item


def _items_of(item, label, lab):
    return set(item[label == lab].tolist())


def test_cold_items_never_train_and_go_whole_to_valid_or_test():
    user, item = _data()
    label = split_cold_items(SPLIT, user, item, None, "t")
    # by hand: an item is cold iff none of its rows is train; each cold item's rows all share one label
    per_item = {i: set(label[item == i].tolist()) for i in range(40)}
    cold = {i for i, labs in per_item.items() if TRAIN not in labs}
    valid_cold = {i for i in cold if per_item[i] == {VALID}}
    test_cold = {i for i in cold if per_item[i] == {TEST}}
    assert len(cold) == 8  # 0.2 * 40
    assert len(valid_cold) == 4 and len(test_cold) == 4  # half of them each, disjoint
    assert valid_cold | test_cold == cold
    assert not _items_of(item, label, TRAIN) & cold


def test_warm_items_split_exactly_as_their_method_alone():
    user, item = _data()
    label = split_cold_items(SPLIT, user, item, None, "t")
    cold = {i for i in range(40) if TRAIN not in set(label[item == i].tolist())}
    warm = ~np.isin(item, sorted(cold))
    assert np.array_equal(label[warm], split_random_ratio(user[warm], [0.8, 0.1, 0.1], 5))
    loo = {**SPLIT, "warm": "random_loo"}
    label_loo = split_cold_items(loo, user, item, None, "t")
    assert np.array_equal(label_loo[~warm], label[~warm])  # the cold draw does not depend on the warm method
    assert np.array_equal(label_loo[warm], split_random_loo(user[warm], 5))


def test_seeded_and_deterministic():
    user, item = _data()
    a = split_cold_items(SPLIT, user, item, None, "t")
    b = split_cold_items(dict(SPLIT), user.copy(), item.copy(), None, "t")
    c = split_cold_items({**SPLIT, "seed": 6}, user, item, None, "t")
    assert np.array_equal(a, b)
    cold = [{i for i in range(40) if TRAIN not in set(x[item == i].tolist())} for x in (a, c)]
    assert cold[0] != cold[1]


def test_shares_round_half_up_and_zero_valid_share():
    user, item = _data(n_items=30)
    label = split_cold_items({**SPLIT, "cold_share": 0.25, "cold_valid_share": 0.0}, user, item, None, "t")
    cold = {i for i in range(30) if TRAIN not in set(label[item == i].tolist())}
    assert len(cold) == 8  # 7.5 rounds up
    assert all(set(label[item == i].tolist()) == {TEST} for i in cold)


def test_no_test_cold_item_is_an_error():
    user, item = _data(n_items=30)
    with pytest.raises(DataError, match="leaves test no cold item"):
        split_cold_items({**SPLIT, "cold_share": 0.04, "cold_valid_share": 0.9}, user, item, None, "t")


def test_prepare_is_byte_identical_and_lists_the_cold_items(tmp_path, cards_dir, monkeypatch):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=50, n_items=40, per_user=12, seed=3))
    write_card(cards_dir, "toy", tmp_path / "d", split=CARD_SPLIT)
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "a"))
    a = prepare(find_card("toy"))
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "b"))
    b = prepare(find_card("toy"))
    files = ("user.npy", "item.npy", "rating.npy", "timestamp.npy", "label.npy", "items.tsv", "users.tsv")
    assert all((a.path / f).read_bytes() == (b.path / f).read_bytes() for f in files)
    assert a.fingerprint == b.fingerprint and a.manifest["cold_items"] == b.manifest["cold_items"]
    listed = a.manifest["cold_items"]
    raw = a.item_raw_ids()
    item, label = a.arrays["item"], a.arrays["label"]
    for split, lab in (("valid", VALID), ("test", TEST)):
        idx = listed[split]["index"]
        assert listed[split]["id"] == [raw[i] for i in idx]
        assert all(set(label[item == i].tolist()) == {lab} for i in idx)
    trained = set(item[label == TRAIN].tolist())
    assert listed["without_training"] == a.n_items - len(trained)
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "c"))
    assert prepare(find_card("toy"), split={**SPLIT, "seed": 6}).fingerprint != a.fingerprint


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.replace("cold_share = 0.2\n", ""), "needs split.cold_share"),
    (lambda s: s.replace("cold_share = 0.2", "cold_share = 1.0"), r"cold_share must lie in \(0, 1\)"),
    (lambda s: s.replace("cold_valid_share = 0.5", "cold_valid_share = 1.0"), r"cold_valid_share must lie"),
    (lambda s: s.replace('warm = "random_ratio"', 'warm = "preset"'), "not a per-user split method"),
    (lambda s: s.replace("ratios = [0.8, 0.1, 0.1]", "ratios = [0.8, 0.3]"), "summing to 1"),
    (lambda s: s.replace('method = "cold_items"', 'method = "random_ratio"'), "only for split.method = 'cold_items'"),
])
def test_bad_cold_split_tables(tmp_path, cards_dir, edit, match):
    p = write_card(cards_dir, "k", tmp_path, split=CARD_SPLIT)
    p.write_text(edit(p.read_text()))
    with pytest.raises(ConfigError, match=match) as e:
        load_card(p)
    assert "k.toml" in str(e.value)
