"""The board's *Parity* section: the suite's parity records (``<suite>/parity/*.json``, written
by ``mmbench parity``), shown on boards built under rules 2 when the suite keeps any. A
record made on another dataset fingerprint than the board's is rejected, not shown."""
from __future__ import annotations

from ..parity import TEST, load_parity


def board_parity(suite, fingerprint: str | None) -> tuple[list[dict], list[tuple[str, str]]]:
    """(the records shown, the rejected ones with their reason)."""
    shown, rejected = [], []
    for rec in load_parity(suite.folder):
        fp = rec["dataset"].get("fingerprint")
        name = f"parity/{rec['model']}-{rec['peer']['name']}.json"
        if fingerprint and fp != fingerprint:
            rejected.append((name, f"made on dataset fingerprint {str(fp)[:12]}, the board's is {fingerprint[:12]}"))
        else:
            shown.append(rec)
    return shown, rejected


def intro(lb) -> str:
    return ("Each baseline that a packaged peer also implements, run by the peer's own training code on this board's "
            "split (the same train/valid/test rows and features), scored by the same evaluator with the same "
            f"masking, stopped by the same rule on validation {lb.main_metric}, against ours with the same "
            "hyper-parameters (mapped to the peer's conventions), on every seed of the record; cost = seconds of "
            f"fitting and evaluation. {TEST}. The records in `parity/` hold every metric, the mapping, the "
            "training histories and the peers' versions.")


def as_json(lb) -> list[dict]:
    out = []
    for rec in lb.parity:
        c = rec["comparison"][rec["main_metric"]]
        out.append({"model": rec["model"], "peer": rec["peer"], "peer_model": rec["mapping"]["peer_model"],
                    "metric": rec["main_metric"], "seeds": rec["seeds"], "ours": c["ours"], "theirs": c["theirs"],
                    "gap": c["gap"], "p": c["p"], "within_noise": c["within_noise"], "cost_s": rec["cost_s"]})
    return out
