"""Card and suite TOML and the CLI's ``-p`` parser get generated malformed values: each command ends in
success or one error line naming the file (and field), never a traceback, nothing left behind."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mmbench.cli.app import parse_params
from mmbench.errors import MMBenchError

from .oracle import check_outcome, check_prepared, invoke, sandbox, write_files

TOML_VALUES = ['"x"', '""', '"../../etc"', '"/abs/path"', '"a\\u0000b"', '"a\\nb"', '"a/b"', '"ml-100k"',
               '"' + "x" * 300 + '"', "-1", "0", "7", "99999999999999999999999", "nan", "inf", "-inf", "1e400",
               "0.5", "true", "[]", '[1, "a"]', "[0.5, 0.25, 0.25]", "[nan, 0.5, 0.5]", "[2.0, -0.5, -0.5]", "{}",
               "{a = 1}", "1979-05-27", "[[1]]", "'lit'", '"preset"', '"temporal_loo"', '"random_loo"',
               '"recbole"', '"no-such-format"', '"x_label"', '"userID"', '"\\u0661"']
GARBAGE = ["[dataset]", "[[sources]]", "x = ", "= 1", "[files", 'unknown = 1', "a.b.c = 1", "[split]\nseed = -5"]


@st.composite
def mutated_toml(draw, text: str, max_mutations: int = 3):
    """``text`` with 1..``max_mutations`` changes: a value replaced, a line dropped, a line inserted."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, max_mutations))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "value", "value", "drop", "insert"]))
        if kind == "value" and " = " in lines[i]:
            lines[i] = lines[i].split(" = ", 1)[0] + " = " + draw(st.sampled_from(TOML_VALUES))
        elif kind == "drop":
            lines.pop(i)
        else:
            lines.insert(i, draw(st.one_of(st.sampled_from(GARBAGE), st.text(max_size=12))))
    return "\n".join(lines) + "\n"


MMREC_OK = "userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n"
CARD = '''[dataset]
name = "m"
version = "1"
title = "t"
license = "test"
format = "mmrec"
modalities = ["interactions"]
feature_rows = "item-id"
[[sources]]
name = "local"
path = "{data}"
[files]
interactions = "m.inter"
[features]
"image/f" = "f.npy"
[filters]
duplicates = "error"
user_core = 0
[split]
method = "preset"
column = "x_label"
seed = 1
'''


@given(mutated_toml(CARD))
def test_card_toml(text):
    with sandbox() as root:
        write_files(root / "data", {"m.inter": MMREC_OK})
        (root / "cards" / "m.toml").write_text(text.replace("{data}", (root / "data").as_posix()))
        for args in (["datasets", "list"], ["prepare", "m"]):
            r = invoke(root, *args)
            ok = check_outcome(r, root, ("m.toml", str(root / "data"), "unknown dataset 'm'"))
            if not ok:
                break
        else:
            check_prepared(root / "home")


SUITE = '''[suite]
name = "s"
version = 1
[dataset]
name = "m"
version = "1"
[protocol]
metrics = ["recall@1", "ndcg@1"]
main_metric = "ndcg@1"
mask_valid_at_test = true
[run]
seeds = [0]
device = "cpu"
[leaderboard]
alpha = 0.05
[[models]]
name = "pop"
params = { }
[[models]]
name = "bpr"
label = "bpr-small"
params = { epochs = 1, embedding_dim = 4 }
'''


@given(mutated_toml(SUITE))
def test_suite_toml(text):
    with sandbox() as root:
        write_files(root / "data", {"m.inter": MMREC_OK})
        (root / "cards" / "m.toml").write_text(CARD.replace("{data}", (root / "data").as_posix()))
        (root / "suite").mkdir()
        (root / "suite" / "suite.toml").write_text(text)
        r = invoke(root, "suite", "status", str(root / "suite"))
        check_outcome(r, root, ("suite.toml", "m.toml", str(root / "data"), "unknown dataset 'm'"))


PAIRS = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(
    ["=", "=1", "a", "a=", "lr=NaN", "lr=Infinity", "lr=-Infinity", "lr=1e999", "epochs=-1", "epochs=1e3",
     "epochs=99999999999999999999999", "epochs=[1,", "epochs=" + "[" * 2000, "epochs=" + "9" * 5000,
     "embedding_dim=true", "embedding_dim=null", "embedding_dim={}", "lr=\u0661", "lr=0x10", "x y=1",
     "epochs=\ud800", "__class__=1", "embedding_dim=1.5"])), max_size=4)


@given(PAIRS)
def test_param_parser(pairs):
    """The parser returns a dict keyed by identifiers, or one error line; a run with those
    parameters is refused in one line before anything is prepared or written."""
    try:
        params = parse_params(tuple(pairs))
    except MMBenchError as e:
        assert "\n" not in str(e)
        return
    assert all(k.isidentifier() for k in params)
    with sandbox() as root:
        write_files(root / "data", {"m.inter": MMREC_OK})
        (root / "cards" / "m.toml").write_text(CARD.replace("{data}", (root / "data").as_posix()))
        args = [a for p in pairs for a in ("-p", p)]
        r = invoke(root, "run", "-m", "bpr", "-d", "m", "--device", "cpu", "-p", "epochs=1", *args)
        if not check_outcome(r, root, ("parameter", "param", "model 'bpr'", "epochs", "lr", "embedding_dim")):
            return
        assert any((root / "results").rglob("seed0.json"))
