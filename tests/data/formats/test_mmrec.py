"""MMRec files: untyped and typed headers, preset split, row-aligned features."""
from __future__ import annotations

import numpy as np

from mmbench.data.prepare import prepare

from .common import card, raw_pairs


def test_mmrec_untyped_header_preset_split_and_row_aligned_features(tmp_path, cards_dir):
    d = tmp_path / "m"
    d.mkdir()
    # rows deliberately not sorted; item 3 only in test
    rows = [(1, 2, 0), (0, 0, 0), (0, 1, 0), (1, 0, 1), (0, 3, 2), (1, 1, 2), (2, 2, 0), (2, 1, 2)]
    (d / "m.inter").write_text("userID\titemID\trating\tx_label\n" +
                               "".join(f"{u}\t{i}\t1\t{lab}\n" for u, i, lab in rows))
    feats = np.arange(4 * 3, dtype=np.float64).reshape(4, 3) * 1.5  # row i = item i
    np.save(d / "f.npy", feats)
    c = card(cards_dir, "m", "mmrec", d, '''[files]
interactions = "m.inter"
[columns]
user = "userID"
item = "itemID"
label = "x_label"
[features]
"image/f" = "f.npy"
[split]
method = "preset"
column = "x_label"
''')
    ds = prepare(c)
    assert raw_pairs(ds, "test") == [("0", "3"), ("1", "1"), ("2", "1")]
    assert raw_pairs(ds, "valid") == [("1", "0")]
    f = ds.features.get("image/f")
    for idx, raw in enumerate(ds.item_raw_ids()):
        assert np.array_equal(f.values[idx], feats[int(raw)].astype(np.float32))
    assert ds.manifest["features"] == {"image/f": f.fingerprint}


def test_mmrec_typed_header_is_accepted(tmp_path, cards_dir):
    d = tmp_path / "t"
    d.mkdir()
    (d / "t.inter").write_text("userID:token\titemID:token\trating:float\tx_label:float\n"
                               "0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n")
    c = card(cards_dir, "t", "mmrec", d, '[files]\ninteractions = "t.inter"\n[split]\nmethod = "preset"\n'
                                         'column = "x_label"\n')
    ds = prepare(c)
    assert raw_pairs(ds, "test") == [("0", "1"), ("1", "0")]
