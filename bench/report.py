"""bench/results.json -> bench/README.md (figures, ratios, conditions, the exact command)."""
from __future__ import annotations

from pathlib import Path

EVAL_ORDER = ["mmbench", "bare bound", "vectorised", "mmrec", "recbole-tuned", "recbole-default", "cornac"]
EVAL_LABEL = {
    "mmbench": "mmbench (`evaluate_ranking`, all 12 metrics + coverage/Gini/novelty)",
    "bare bound": "bare bound: batched scoring + `torch.topk` only",
    "vectorised": "straightforward vectorised torch pass",
    "mmrec": "MMRec-style (torch top-k, Python loop for hits)",
    "recbole-tuned": "RecBole 1.2.1 `Trainer.evaluate`, tuned `eval_batch_size`",
    "recbole-default": "RecBole 1.2.1 `Trainer.evaluate`, default `eval_batch_size` 4096",
    "cornac": "Cornac `ranking_eval` (user by user)",
}


def _gib(b) -> str:
    return f"{b / 2**30:.2f} GiB"


def _load(xs) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


def _eval_table(sec: dict, key: str = "") -> list[str]:
    extra = " (OpenMP's default busy-waiting)" if "OpenMP default" in key else ""
    busy = any("busy" in d for d in sec["methods"].values())
    load = (f" Load average (1/5/15 min) before the section: {_load(sec['load_before'])}; after: "
            f"{_load(sec['load_after'])}." if "load_before" in sec else "")
    lines = [f"### {sec['scale']}{extra}", "",
             f"{sec['test_users']:,} test users x {sec['stats']['items']:,} items, "
             f"{sec['stats']['interactions']:,} interactions; batches of {sec['batch_users']} users "
             f"({sec['block_mib']} MiB score block); {sec['threads']} torch threads.{load}", ""]
    head = "| evaluator | median s (users timed) | full pass s | x mmbench time |"
    rule = "|---|---|---|---|"
    if busy:
        head += " busy: median s | busy: full pass s | busy: x mmbench time |"
        rule += "---|---|---|"
    lines += [head, rule]
    for m in EVAL_ORDER:
        d = sec["methods"].get(m)
        if d is None:
            continue
        row = f"| {EVAL_LABEL[m]} | {_cells(d)} |"
        if busy:
            row += f" {_cells(d['busy'])} |" if "busy" in d else " - | - | - |"
        lines.append(row)
    agree = sec.get("agreement_max_abs_diff", {})
    if agree:
        lines += ["", "Agreement with mmbench before timing (max |difference|, tolerance 1e-6): "
                  + ", ".join(f"{k} {v:.1e}" for k, v in agree.items()) + "."]
    mem = sec.get("memory")
    if mem:
        lines += ["", f"Peak RSS of the process during mmbench's full evaluation: **{_gib(mem['rss_peak'])}** "
                  f"(resident before: {_gib(mem['rss_before'])}; one score block {mem['score_block_bytes'] / 2**20:.0f} MiB; "
                  f"a dense users x items float32 matrix would be {_gib(mem['dense_matrix_bytes'])})."]
    return lines + [""]


def _cells(d: dict) -> str:
    full = f"{d['full_pass_s']:.3f}" + (" (scaled)" if d["extrapolated"] else "")
    return f"{d['median_s']:.3f} ({d['users']:,}; n={len(d['seconds'])}) | {full} | {d['ratio_to_mmbench']:.2f}"


def _train_table(sec: dict) -> list[str]:
    lines = [f"### {sec['data']}", "",
             f"Target validation NDCG@10: **{sec['target']:.4f}** ({sec['target_rule']}); "
             f"validation on {sec['valid_users']:,} users, train items masked.", "",
             "| trainer | params | s/epoch (median) | epochs to target | s to target (median, n) | best valid NDCG@10 |",
             "|---|---|---|---|---|---|"]
    for t in sec["trainers"]:
        tt = t["time_to_target_s"]
        tt_s = f"{tt:.2f} ({t['reached']}/{t['runs']})" if tt is not None else f"not reached (0/{t['runs']})"
        ep = t["epochs_to_target"]
        lines.append(f"| {t['name']} | {t['params']} | {t['s_per_epoch']:.4f} | {ep if ep is not None else '-'} | "
                     f"{tt_s} | {t['best_valid']:.4f} |")
    return lines + [""]


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _zoo_full(r: dict, side: str) -> str:
    """Epochs run (best), whether early stopping fired, seconds to the best epoch, best valid value."""
    f = r.get("full", {}).get(side)
    if f is None:
        return r.get("full_skipped", "-")
    stopped = "converged" if f["converged"] else "**cap reached**"
    return f"{f['epochs_run']} ({f['best_epoch']}), {stopped}, {f['s_to_best']:.1f} s, {_num(f['best_valid'], '.4f')}"


def _zoo_row(r: dict) -> str:
    if "error" in r:
        return f"| {r['model']} | {r['error']} |" + " |" * 7
    ours, peer = r["probe"]["ours"], r["probe"].get("peer")
    if not r["default_epochs"]:
        return f"| {r['model']} | no epochs (fit {ours['fit_s']:.2f} s) | - | - | - | - | - | - | - |"
    mine = r.get("ours_s_per_epoch", ours["s_per_epoch"])
    theirs = peer and r.get("peer_s_per_epoch", peer["s_per_epoch"])
    cells = [r["model"], _num(mine, ".3f"), _num(r.get("bpr_epochs_per_epoch"), ".2f"),
             _num(r.get("step_bound_s"), ".3f"), _num(r.get("x_step_bound"), ".2f"), _zoo_full(r, "ours")]
    if peer:
        cells += [f"{r['peer']} {theirs:.3f}", _num(mine / theirs, ".2f"), _zoo_full(r, "peer")]
    else:
        cells += ["-", "-", "-"]
    return "| " + " | ".join(cells) + " |"


def _zoo_table(sec: dict) -> list[str]:
    lines = [f"### {sec['data']} ({sec['users']:,} users x {sec['items']:,} items, {sec['train']:,} training "
             f"interactions; features {', '.join(sec['features'] or []) or 'none'}; "
             f"{sec.get('threads', 2)} torch thread{'s' if sec.get('threads', 2) != 1 else ''})", "",
             f"Probe: {sec['probe_epochs']} epochs; full run: the model's defaults, epochs capped at "
             f"{sec['max_epochs']}, when the probe predicts at most {sec['budget_s']:g} s. Load average before: "
             f"{_load(sec['load_before'])}; after: {_load(sec['load_after'])}.", "",
             "| model | s/epoch | x BPR epoch | step bound s/epoch | x step bound | full run: epochs (best), stopped, "
             "s to best, valid NDCG@10 | peer s/epoch | ours / peer per epoch | peer full run |",
             "|---|---|---|---|---|---|---|---|---|"]
    return lines + [_zoo_row(r) for r in sec["models"]] + [""]


def _jobs_table(sec: dict) -> list[str]:
    n = sec["cores"]
    lines = ["## One job on every core, or one single-threaded job per core", "",
             f"`{sec['command']}` (wall time of the whole command, median of {sec['reps']} interleaved rounds, "
             f"{n} cores): one run on {n} threads, one run on one thread, and {n} single-threaded runs side by "
             f"side (what `suite run`'s workers do by default). Throughput = {n} x (one run on {n} threads) / "
             f"({n} runs side by side): the work per second one thread per job gets out of the cores, against "
             f"threads inside one job. Load average before: {_load(sec['load_before'])}; after: "
             f"{_load(sec['load_after'])}.", "",
             f"| model | one run, {n} threads: s | one run, 1 thread: s | {n} runs side by side: s | throughput |",
             "|---|---|---|---|---|"]
    for r in sec["rows"]:
        m = r["median_s"]
        lines.append(f"| {r['model']} | {m['all_threads']:.1f} | {m['one_thread']:.1f} | {m['side_by_side']:.1f} | "
                     f"x{r['throughput']:.2f} |")
    return lines + [""]


def _threads_table(sec: dict) -> list[str]:
    rows = {(r["policy"], r["busy"]): r for r in sec["rows"]}
    policies = list(dict.fromkeys(r["policy"] for r in sec["rows"]))
    base = rows.get(("mmbench default (passive)", 0), {}).get("median_s")
    lines = ["## Threads on a busy machine", "",
             f"`{sec['command']}` as a user runs it ({sec['cores']} cores, every thread mmbench picks), wall time of "
             f"the whole command, median of {sec['reps']} interleaved rounds; 'two busy' = next to two "
             "`python -c 'while True: pass'` processes. 'OpenMP default' is `OMP_WAIT_POLICY=\"\"` (spin, then "
             "sleep); mmbench sets passive waiting unless the user chose a policy.", "",
             "| waiting policy | quiet: s | two busy: s | two busy / quiet | x mmbench default, two busy |",
             "|---|---|---|---|---|"]
    busy_base = rows.get(("mmbench default (passive)", 2), {}).get("median_s")
    for p in policies:
        q, b = rows[(p, 0)]["median_s"], rows[(p, 2)]["median_s"]
        lines.append(f"| {p} | {q:.1f} | {b:.1f} | {b / q:.1f} | {b / busy_base:.1f} |" if busy_base else
                     f"| {p} | {q:.1f} | {b:.1f} | {b / q:.1f} | - |")
    loads = [x for r in sec["rows"] for run in r["runs"] for x in (run["load_before"][0], run["load_after"][0])]
    lines += ["", f"Load average (1 min) around the runs: {min(loads):.1f} to {max(loads):.1f}"
              + (f"; quiet mmbench default: {base:.1f} s." if base else "."), ""]
    return lines


def render(res: dict) -> str:
    m = res["machine"]
    v = m["versions"]
    secs = res["sections"]
    out = ["# mmbench benchmarks", "",
           "Generated by `bench/run.py` (`make bench`); raw figures in `results.json`. Re-run with:", "",
           "```", res["command"].strip(), "```", "",
           f"Machine: {m['cpu'] or 'unknown CPU'}, {m['cores']} cores, {m['memory_gib']} GiB; "
           + ", ".join(f"{k} {val}" for k, val in v.items())
           + f"; torch threads {m['torch_threads']}; OMP_WAIT_POLICY={res.get('omp_wait_policy') or 'default'}; "
           f"malloc {res.get('malloc') or 'glibc default'}. "
           f"Load average (1/5/15 min) before: {', '.join(f'{x:.1f}' for x in res['load_before'])}; "
           f"after: {', '.join(f'{x:.1f}' for x in res.get('load_after', []))}. "
           f"Run {res['started']}, {res.get('total_seconds', 0):.0f} s in all.", ""]
    for run in res.get("partial_runs", []):
        failed = f"; failed, previous figures kept: {', '.join(run['failed'])}" if run.get("failed") else ""
        out += [f"Also `{run['command'].strip()}` ({', '.join(run['sections'])}{failed}; "
                f"OMP_WAIT_POLICY={run.get('omp_wait_policy') or 'default'}"
                f"{'; malloc ' + run['malloc'] if run.get('malloc') else ''}), run {run['started']}, "
                f"load before {', '.join(f'{x:.1f}' for x in run['load_before'])}, "
                f"after {', '.join(f'{x:.1f}' for x in run['load_after'])}.", ""]
    out += _summary(secs)
    out += _targets(secs)
    if any(k.startswith("eval") for k in secs):
        out += ["## Full-ranking evaluation", "",
                "All evaluators rank the same scores on the same split (test items; train + valid items masked): "
                "exact integer-valued float32 scores (see `synth.py`), so no two items tie and every implementation "
                "sees identical numbers (mmbench would order ties by item index; see Notes). Metrics compared: "
                "recall, NDCG, precision, hit rate, MRR @10 and @20 (same definitions everywhere); MAP@k divides by "
                "min(|rel|, k) in RecBole and MMRec but by |rel| in mmbench (as ranx): ours is converted before the check. Cornac's MRR and MAP are over the whole "
                "ranking, so only its @k metrics are compared. Times are medians of interleaved rounds; "
                "'scaled' = measured on a random sample of test users and multiplied up to all of them (a user "
                "costs the same whatever the others). 'x mmbench time' = that evaluator's full pass / mmbench's; "
                "'busy' columns: the same, timed next to one other busy process (see Notes).", ""]
    for key in [k for k in secs if k.startswith("eval")]:
        if "methods" in secs[key]:
            out += _eval_table(secs[key], key)
        else:
            out += [f"### {key}: failed ({secs[key].get('error')})", ""]
    if any(k.startswith("train") for k in secs):
        out += ["## Training: BPR-MF time to quality", "",
                "Each trainer runs one epoch at a time on the same split; after every epoch mmbench's evaluator "
                "measures validation NDCG@10 (not counted in the time). Seconds count training only, from the "
                "model's creation (RecBole's and Cornac's data loading excluded, as is mmbench's TrainData). "
                "64-d factors everywhere.", ""]
        for key in ("train-ml100k", "train-1m"):
            if key in secs and "trainers" in secs[key]:
                out += _train_table(secs[key])
            elif key in secs:
                out += [f"### {key}: failed ({secs[key].get('error')})", ""]
    if any(k.startswith("zoo") for k in secs):
        out += ["## Training the zoo", "",
                "Every built-in ranking model with its declared defaults on the boards' data and features, run as "
                "`mmbench run` runs it (seed 0); where a packaged peer has the model, the peer's own training code "
                "runs next to it through `mmbench.parity` (equal hyper-parameters, same split, evaluator and "
                "early stopping). s/epoch is training only (validation excluded), from the full run where there is one (a probe's includes one-off warm-up such as loading compiled code); 's to best' is the fit time up "
                "to the best validation epoch (fit time x best epoch / epochs run). Two bounds for every model: BPR's "
                "epoch on the same data ('x BPR epoch') and the model's own step bound (the forward and backward "
                "pass of its loss over one epoch of batches drawn beforehand, timed alone: no sampling, optimiser "
                "step or validation; 'x step bound' is what the loop adds).", ""]
        for key in ("zoo-ml100k", "zoo-lfm2k"):
            if key in secs and "models" in secs[key]:
                out += _zoo_table(secs[key])
            elif key in secs:
                out += [f"### {key}: failed ({secs[key].get('error')})", ""]
    if "threads" in secs and "rows" in secs["threads"]:
        out += _threads_table(secs["threads"])
    if "jobs" in secs and "rows" in secs["jobs"]:
        out += _jobs_table(secs["jobs"])
    if "cli" in secs and "median_s" in secs["cli"]:
        c = secs["cli"]
        out += ["## Start-up", "", f"`{c['command']}`: median **{c['median_s']:.3f} s** over 10 runs "
                f"(for scale: `python -c 'import torch'` takes {c['python_import_torch_median_s']:.2f} s here).", ""]
    suite_time = Path(__file__).with_name("test-suite.md")  # timed by hand: `make test` is not a benchmark
    if suite_time.is_file():
        out += suite_time.read_text(encoding="utf-8").rstrip("\n").split("\n") + [""]
    out += _notes()
    if out[-1] == "":
        out.pop()
    out += _sgd_note(secs) + [""]
    return "\n".join(out) + "\n"


def _summary(secs: dict) -> list[str]:
    rows = []
    for key in [k for k in secs if k.startswith("eval")]:
        s = secs[key]
        if "methods" not in s:
            continue
        ms = s["methods"]
        tag = " (OpenMP default waiting)" if "OpenMP default" in key else ""
        rows.append(f"- {s['scale']}{tag}: {_summary_line(ms)}.")
        if "busy" in ms["mmbench"]:
            rows.append(f"- {s['scale']}{tag}, next to one busy process: "
                        f"{_summary_line({m: d['busy'] for m, d in ms.items() if 'busy' in d})}.")
    if "eval-elec" in secs and secs["eval-elec"].get("memory"):
        rows.append(f"- Elec-scale peak RSS: {_gib(secs['eval-elec']['memory']['rss_peak'])}.")
    for key in ("train-ml100k", "train-1m"):
        s = secs.get(key, {})
        if "trainers" in s:
            parts = [f"{t['name']} {t['time_to_target_s']:.2f} s" if t["time_to_target_s"] is not None
                     else f"{t['name']} not reached" for t in s["trainers"]]
            rows.append(f"- Time to validation NDCG@10 {s['target']:.3f} on {s['data']}: " + ", ".join(parts) + ".")
    if "cli" in secs and "median_s" in secs["cli"]:
        rows.append(f"- `mmbench --help`: {secs['cli']['median_s']:.3f} s.")
    return (["## Summary", ""] + rows + [""]) if rows else []


def _summary_line(ms: dict) -> str:
    parts = [f"{peer} x{ms[peer]['ratio_to_mmbench']:.1f}"
             for peer in ("recbole-default", "recbole-tuned", "cornac", "mmrec", "vectorised") if peer in ms]
    bound = ms.get("bare bound", {}).get("ratio_to_mmbench")
    return (f"mmbench {ms['mmbench']['full_pass_s']:.2f} s per full pass; peers take " + ", ".join(parts)
            + (f"; mmbench / bare bound = {1 / bound:.2f}" if bound else ""))


def _targets(secs: dict) -> list[str]:
    """The issue's targets, checked against this run's figures."""
    rows = []

    def mark(ok):
        return "yes" if ok else "**no**"

    for key in [k for k in secs if k.startswith("eval") and "methods" in secs[k]]:
        s, ms = secs[key], secs[key]["methods"]
        tag = s["scale"] + (" (OpenMP default waiting)" if "OpenMP default" in key else "")
        conds = [("", ms)] + ([(", one busy process", {m: d["busy"] for m, d in ms.items() if "busy" in d})]
                              if "busy" in ms["mmbench"] else [])
        for cond, cm in conds:
            if "recbole-default" in cm:
                r = cm["recbole-default"]["ratio_to_mmbench"]
                rows.append(f"| >= 10x faster than RecBole's default evaluator | {tag}{cond} | x{r:.1f} | "
                            f"{mark(r >= 10)} |")
            if "vectorised" in cm:
                r = cm["vectorised"]["ratio_to_mmbench"]
                rows.append(f"| faster than a straightforward vectorised pass | {tag}{cond} | x{r:.2f} | "
                            f"{mark(r > 1)} |")
            if "Elec" in s["scale"] and "bare bound" in cm:
                r = 1 / cm["bare bound"]["ratio_to_mmbench"]
                rows.append(f"| full evaluation <= 1.1x the bare bound | {tag}{cond} | {r:.2f}x | {mark(r <= 1.1)} |")
        if s.get("memory"):
            g = s["memory"]["rss_peak"] / 2**30
            rows.append(f"| peak RSS < 4 GiB | {tag} | {g:.2f} GiB | {mark(g < 4)} |")
    for key in ("train-ml100k", "train-1m"):
        s = secs.get(key, {})
        if "trainers" not in s:
            continue
        cn = next((t for t in s["trainers"] if t["name"].startswith("Cornac BPR (seeded")), {}).get("time_to_target_s")
        ours = [(t["time_to_target_s"], t["name"]) for t in s["trainers"]
                if t["name"] in ("mmbench bpr", "mmbench bpr-sgd") and t["time_to_target_s"] is not None]
        if ours and cn is not None:
            mm, name = min(ours)
            rows.append(f"| time to quality no worse than Cornac's (seeded) | {s['data'].split(' (')[0]} | "
                        f"{name} {mm:.2f} s vs {cn:.2f} s | {mark(mm <= cn)} |")
    if "cli" in secs and "median_s" in secs["cli"]:
        c = secs["cli"]["median_s"]
        rows.append(f"| `mmbench --help` < 0.5 s | - | {c:.3f} s | {mark(c < 0.5)} |")
    if not rows:
        return []
    return ["## Targets", "", "| target | where | measured | met |", "|---|---|---|---|"] + rows + [""]


def _sgd_note(secs: dict) -> list[str]:
    firsts = [secs[k]["bpr_sgd_first_fit_s"] for k in ("train-ml100k", "train-1m")
              if "bpr_sgd_first_fit_s" in secs.get(k, {})]
    if not firsts:
        return []
    return [f"- bpr-sgd's one-off cost per process (import numba, load the compiled loop from its on-disk "
            f"cache, one epoch): {max(firsts):.2f} s, paid in the warm-up and not counted above (as Cornac's "
            f"import is not); compiling it the first time on a machine takes a few seconds more."]


def _notes() -> list[str]:
    return ["## Notes", "",
            "- OpenMP waiting: by default the benchmark runs every section with `OMP_WAIT_POLICY=PASSIVE` "
            "(all evaluators and trainers alike). On a machine shared with other work, OpenMP's default "
            "busy-waiting makes every small torch op after a parallel one wait for a time slice "
            "(measured here: a 0.1 ms gather took 6 ms after a matmul); `--omp-active` keeps the default.",
            "- The Elec-scale catalog is synthetic with the shape of Amazon Electronics (MMRec's 5-core: "
            "192,403 users, 63,001 items, about 1.7M interactions; 64-d factors). RecBole and Cornac rank "
            "a sample of its test users (their per-user cost is constant; scaled to the whole pass).",
            "- RecBole's `eval_batch_size` counts scores (users x items), not users: the default 4096 means one "
            "or two users per batch. 'Tuned' gives it the same score block as mmbench.",
            "- Ranking order: mmbench ranks by score, equal scores by lower item index, exactly and the same on "
            "CPU and CUDA. `torch.topk` leaves ties to the backend, so the top-k is taken on int64 keys that "
            "encode (score, -index): per user, the maxima of groups of 8 or 32 consecutive items (one read of the "
            "score block), the best k groups, then the best k of their items. Measured in CPU time on one core "
            "(20 best of each row): 1.0-1.2x `torch.topk` on 1,349 items, 0.7-0.8x on 20k, 0.5-0.6x on 63k. The "
            "scores here have no ties, so every evaluator returns the same lists; on tied scores (popularity, "
            "saturated or integer scores) the torch.topk-based ones (vectorised, MMRec-style, RecBole) would not.",
            "- What limits evaluation: mmbench's pass is the model's scoring (a matmul) plus the exact top-k; "
            "masking, hits (binary search in sorted user*n_items+item keys, no dense target matrix), the checks "
            "(NaN anywhere, users whose every candidate is -inf) and all metrics add little. The bare bound "
            "is the model's scoring plus `torch.topk`, so on large catalogs mmbench's pass can be under it. The "
            "temporary arrays of the top-k live in buffers reused from batch to batch: fresh multi-MB arrays "
            "cost about as much in page faults as the work done in them. With glibc's default malloc the "
            "model's own score block still page-faulted in mmbench's pass and not in the bare loop, depending on "
            "how glibc placed it among the other allocations (340k-510k minor faults and 0.6-1.4 s of system "
            "time per 50k pass, most of the gap to the bound); since `import mmbench` tells glibc to keep freed "
            "memory for reuse (`mallopt`: mmap threshold 32 MiB, trim threshold 1 GiB; `MMBENCH_MALLOC=default` "
            "or the user's own `MALLOC_*_` settings keep glibc's), the pass faults about once and takes the "
            "bound's CPU time (`bench/pagefaults.py [--malloc-default] 50k` counts the faults). Every section "
            "runs in a process that imported mmbench, so the peers get the same allocator (`run.py "
            "--malloc-default` measures glibc's default). "
            "Scoring the synthetic model in "
            "item tiles of 8k was 10-20% faster at Elec scale (the tile stays in cache), but that is a model's "
            "own business (its `score()` may build its block in tiles): no item-subset scoring API was added, "
            "the exact top-k already reads the block once.",
            "- Busy columns: every round is timed twice, as the machine is and next to one other busy process "
            "(`python -c 'while True: pass'`, started before the round and killed after). RecBole's and "
            "Cornac's per-user loops run on one thread and lose little to a neighbour; parallel torch ops wait "
            "for a thread that shares its core. A pass over fewer than 4M scores (ml-100k) therefore runs "
            "on one thread in mmbench (`kernels.threads_for`); larger passes use every thread.",
            "- With OpenMP's default busy-waiting on a machine busier than its cores, each small op after a "
            "parallel one waits for a time slice (several ms): mmbench's extra ops per batch (masking, hits, "
            "metrics) then cost more than their work, and the per-user loops of RecBole and MMRec suffer too; "
            "see the second 50k table.",
            "- What limits training: `bpr` trains with Adam on mini-batches, and each step reads and writes "
            "the whole embedding tables (dense gradients and moments) plus a dozen passes over the batch "
            "(memory-bound: ~0.06 s per ml-100k epoch at batch 16384, 0.09-0.12 s at 4096, with autograd or "
            "hand-written gradients alike); Cornac's Cython SGD touches three rows per sample. Adam needs far fewer "
            "epochs: on 1M interactions that wins (2 epochs vs ~26); on ml-100k cheap epochs win. `bpr-sgd` "
            "is the paper's LearnBPR (per-triple SGD) compiled with numba: the same three-row updates as "
            "Cornac, sequential and seeded (Cornac's 2-thread mode is Hogwild and unseeded). Its dot product "
            "sums eight interleaved partial sums in a fixed order, so the result does not depend on the "
            "CPU's vector width. The shared Adam loop got faster without changing any number for a given "
            "seed (Adam `foreach`, negatives re-checked only where redrawn, no compiler import when seeding); "
            "fused Adam would be ~6x faster per optimizer step but changes the last bits of the results.",
            ""]
