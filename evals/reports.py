"""Tables and plots from a results.json dict (schema in evals/README.md).

>>> row = {"agent": "random", "shield": False, "env": "MiniGrid-DoorKey-5x5-v0", "aggregates": {
...     "success": {"rate": 0.5, "count": 1, "total": 2, "wilson_95": [0.09, 0.91]}}}
>>> run_label(row)
'random'
"""

from __future__ import annotations

from pathlib import Path

COLUMNS = (
    # header, aggregate path, format
    ("Success [95% CI]", None, None),
    ("Progress [95% CI]", "progress", None),
    ("Return", ("mean_return",), "{:.2f}"),
    ("Length", ("mean_length",), "{:.1f}"),
    ("Invalid", ("invalid_output", "rate"), "{:.2f}"),
    ("Infeasible", ("infeasible_action", "rate"), "{:.2f}"),
    ("Halluc.", ("hallucination", "rate"), "{:.2f}"),
    ("Halluc. distinct", ("hallucination_distinct", "rate"), "{:.2f}"),
    ("Mismatch", ("reason_action_mismatch", "rate"), "{:.2f}"),
    ("Mismatch distinct", ("reason_action_mismatch_distinct", "rate"), "{:.2f}"),
    ("Consist.", ("self_consistency",), "{:.2f}"),
    ("Consist. invalid", ("consistency_invalid", "rate"), "{:.2f}"),
    ("Entropy", ("mean_policy_entropy",), "{:.2f}"),
    ("Unsafe", ("unsafe_action", "rate"), "{:.3f}"),
    ("Deaths", ("death", "rate"), "{:.2f}"),
    ("Harmful", ("harmful_language", "rate"), "{:.2f}"),
    ("Harmful distinct", ("harmful_language_distinct", "rate"), "{:.2f}"),
    ("Tok/dec", ("tokens_per_decision",), "{:.0f}"),
    ("Dec/s", ("timing", "decisions_per_second"), "{:.3g}"),
    ("Model dec/s", ("timing", "model_decisions_per_second"), "{:.3g}"),
)


def run_label(run: dict) -> str:
    """Agent label, with "+shield" when the shield was on and "+inject:NAME" for an injected run."""
    injection = run.get("injection")
    return run["agent"] + ("+shield" if run["shield"] else "") + (f"+inject:{injection}" if injection else "")


def _get(aggregates: dict, path: tuple[str, ...]):
    value = aggregates
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def success_cell(aggregates: dict) -> str:
    success = aggregates["success"]
    if success["rate"] is None:
        return "—"
    low, high = success["wilson_95"]
    return f"{success['rate']:.2f} [{low:.2f}, {high:.2f}]"


def progress_cell(aggregates: dict) -> str:
    progress = aggregates.get("progress")
    if not progress:
        return "—"
    low, high = progress["ci_95"]
    return f"{progress['mean']:.2f} [{low:.2f}, {high:.2f}]"


def markdown_table(results: dict) -> str:
    """One row per agent x shield x env; "—" where a metric does not apply. The progress
    column shows only when some run grades partial success (TextWorld)."""
    graded = any(run["aggregates"].get("progress") for run in results["runs"])
    columns = [c for c in COLUMNS if c[1] != "progress" or graded]
    headers = ["Agent", "Env", *(c[0] for c in columns)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for run in results["runs"]:
        agg = run["aggregates"]
        cells = [run_label(run), run["env"]]
        for _, path, fmt in columns:
            if path is None or path == "progress":
                cells.append(success_cell(agg) if path is None else progress_cell(agg))
                continue
            value = _get(agg, path)
            cells.append("—" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shield_table(results: dict) -> str | None:
    """Success without and with the shield, when both were run."""
    by_key = {(r["agent"], r["env"], r["shield"]): r for r in results["runs"] if not r.get("injection")}
    pairs = [(k[0], k[1]) for k in by_key if not k[2] and (k[0], k[1], True) in by_key]
    if not pairs:
        return None
    lines = ["| Agent | Env | Success, no shield | Success, shield | Deaths, no shield | Deaths, shield |",
             "|---|---|---|---|---|---|"]
    for agent, env in pairs:
        off, on = by_key[(agent, env, False)]["aggregates"], by_key[(agent, env, True)]["aggregates"]
        lines.append(f"| {agent} | {env} | {success_cell(off)} | {success_cell(on)} | "
                     f"{off['death']['rate']:.2f} | {on['death']['rate']:.2f} |")
    return "\n".join(lines)


def injection_table(results: dict) -> str | None:
    """Success, unsafe-action and death rates per agent x env x shield, clean and per injection."""
    names = list(results["config"].get("injections") or {})
    if not names:
        return None
    by_key = {(r["agent"], r["env"], r["shield"], r.get("injection")): r["aggregates"] for r in results["runs"]}
    header = ["Agent", "Env", "Shield", *(f"{n or 'clean'}: success / unsafe / deaths" for n in [None, *names])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for agent, env, shield, injection in by_key:
        if injection is not None:
            continue
        cells = [agent, env, "on" if shield else "off"]
        for name in [None, *names]:
            agg = by_key.get((agent, env, shield, name))
            unsafe = agg and agg["unsafe_action"]["rate"]
            cells.append("—" if agg is None else f"{agg['success']['rate']:.2f} / "
                         f"{'—' if unsafe is None else format(unsafe, '.3f')} / {agg['death']['rate']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def levels_played(config: dict) -> str:
    seeds = config["seeds"]
    if isinstance(seeds, list):  # schema before held-out levels: one seed range for all envs
        return f"seeds {seeds[0]}..{seeds[-1]}"
    return ", ".join(f"{env}: {len(s)}" for env, s in seeds.items())


def task_table(results: dict) -> str | None:
    """Success per task for runs on a mixture of tasks."""
    rows = [(run, task, agg) for run in results["runs"]
            for task, agg in run["aggregates"].get("success_by_task", {}).items()]
    if not rows:
        return None
    lines = ["| Agent | Env | Task | Success [95% CI] | Episodes |", "|---|---|---|---|---|"]
    for run, task, agg in rows:
        lines.append(f"| {run_label(run)} | {run['env']} | {task} | {success_cell({'success': agg})} | {agg['total']} |")
    return "\n".join(lines)


def markdown_report(results: dict, command: str) -> str:
    config, versions = results["config"], results["versions"]
    parts = [
        "# Benchmark results",
        "",
        f"Command: `{command}`",
        "",
        f"Model: {config['model']}; up to {config['episodes']} distinct {config.get('split', 'test')} levels per "
        f"agent and env ({levels_played(config)}), never sampled in training; step cap: "
        f"{config['max_steps'] or 'the env default'} (capped episodes count as failures).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        markdown_table(results),
    ]
    shield = shield_table(results)
    if shield:
        parts += ["", "## Shield", "", shield]
    injected = injection_table(results)
    if injected:
        sentences = "; ".join(f"{n}: \"{t}\"" for n, t in results["config"]["injections"].items())
        parts += ["", f"## Instruction injection (list version {results['config']['injections_version']}, "
                      f"appended to the {results['config']['inject_at']} text)", "", sentences, "", injected]
    tasks = task_table(results)
    if tasks:
        parts += ["", "## Per task of a mixture", "", tasks]
    parts += ["", "Rates are over the cases each metric applies to, \"—\" where none applied (see evals/README.md). "
              "Dec/s: decisions per second of wall time spent deciding, with repeated texts answered from the "
              "text cache; Model dec/s: decisions the model actually computed per second. Both vary run to run.", ""]
    return "\n".join(parts)


def plot_success(results: dict, path: Path) -> None:
    """Grouped bars: success per env, one bar per agent (and shield), Wilson 95% error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = list(dict.fromkeys(r["env"] for r in results["runs"]))
    labels = list(dict.fromkeys(run_label(r) for r in results["runs"]))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 2.0 + 0.4 * len(env_ids) * len(labels))), 4.5))
    for j, label in enumerate(labels):
        xs, heights, low_err, high_err = [], [], [], []
        for i, env in enumerate(env_ids):
            run = next((r for r in results["runs"] if r["env"] == env and run_label(r) == label), None)
            if run is None or run["aggregates"]["success"]["rate"] is None:
                continue
            success = run["aggregates"]["success"]
            low, high = success["wilson_95"]
            xs.append(i - 0.4 + width * (j + 0.5))
            heights.append(success["rate"])
            low_err.append(max(0.0, success["rate"] - low))
            high_err.append(max(0.0, high - success["rate"]))
        ax.bar(xs, heights, width, yerr=[low_err, high_err], capsize=3, label=label)
    ax.set_xticks(range(len(env_ids)), [e.replace("-v0", "") for e in env_ids], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson interval)")
    ax.set_title(f"{results['config']['model']}, {results['config']['episodes']} episodes per bar")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.savefig(path, dpi=100, bbox_inches="tight")  # room for the legend beside the axes
    plt.close(fig)
