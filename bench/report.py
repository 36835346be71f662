"""The benchmark table: the median of the runs, its range, the ratio to the do-nothing endpoint."""

import statistics

# (key, label, unit, reference key for the ratio or None, target). Front-door figures are divided
# by the do-nothing app behind the same front door; the ratio to the app reached directly follows.
FIGURES = [
    ("noop_post_rps", "do-nothing POST (validates the same body), direct", "req/s", None, "reference"),
    ("noop_get_rps", "do-nothing GET, direct", "req/s", None, "reference"),
    ("noop_front_post_rps", "do-nothing POST through the front door (Caddy)", "req/s", None, "reference"),
    ("noop_front_get_rps", "do-nothing GET through the front door (Caddy)", "req/s", None, "reference"),
    ("sign_rps", "durable signatures/s at saturation (wrk -c64, through the front door)", "/s", "noop_front_post_rps",
     "SQLite >= 2,000, PG >= 3,500; >= 0.5x"),
    ("sign_rps", "  the same, as a ratio to the do-nothing POST reached directly", "/s", "noop_post_rps", ""),
    ("sign_p50_ms", "  p50 at saturation", "ms", None, ""),
    ("sign_p99_ms", "  p99 at saturation", "ms", None, ""),
    ("sign_cpu_ms", "  CPU per signature, signing process", "ms", None, ""),
    ("fixed_p99_ms", "p99 at a fixed 1,000 signatures/s", "ms", None, "< 50 ms"),
    ("fixed_rps", "  rate achieved", "/s", None, ""),
    ("count_rps", "count JSON, one hot petition, through the front door", "req/s", "noop_front_get_rps",
     ">= 10,000; >= 1.5x"),
    ("count_rps", "  the same, as a ratio to the do-nothing GET reached directly", "req/s", "noop_get_rps", ""),
    ("page_rps", "petition page, one hot petition, through the front door", "req/s", "noop_front_get_rps",
     ">= 2,000; >= 0.3x"),
    ("page_rps", "  the same, as a ratio to the do-nothing GET reached directly", "req/s", "noop_get_rps", ""),
    ("page_lang_rps", "  the same page in Arabic (Accept-Language), the petition being in English", "req/s",
     "noop_front_get_rps", ""),
    ("list_rps", "the discovery list (/petitions), most signed first, through the front door", "req/s",
     "noop_front_get_rps", ">= 0.3x"),
    ("list_json_rps", "  its open data (/petitions.json), through the front door", "req/s", "noop_front_get_rps", ">= 0.3x"),
    ("viewers_sign_rps", "signatures/s while 1,000 viewers poll the count", "/s", "sign_rps", ">= 0.8x signing alone"),
    ("viewers_poll_5xx", "  viewers' 5xx answers", "", None, "0"),
    ("confirm_rps", "confirmation links followed/s (GET /c/<token>, through the front door)", "/s",
     "noop_front_get_rps", ""),
    ("confirm_eps", "confirmation emails/s (throttle off, local sink)", "/s", "sign_rps", ">= 1x signing"),
    ("count_eps", "counting a backlog (live consumer) events/s", "/s", "noop_post_rps", ">= 1x signing"),
    ("replay_eps", "replay (counter rebuild) events/s", "/s", None, ">= 30,000"),
    ("fanout_eps", "supporter fan-out emails/s (throttle off, local sink)", "/s", None, ">= 1,000"),
    ("visible_p99_ms", "counts (202, or link followed) -> count visible at the front door, p99", "ms", None,
     "< 1,000 ms"),
]


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def summary_rows(results: dict[str, list[dict]]) -> list[list[str]]:
    backends = list(results)
    rows = []
    for key, label, unit, reference, target in FIGURES:
        row = [label]
        for backend in backends:
            runs = [r for r in results[backend] if key in r]
            if not runs:
                row += ["-", ""]
                continue
            values = [float(r[key]) for r in runs]
            cell = f"{_number(statistics.median(values))} {unit}".strip()
            if len(values) > 1:
                cell += f" ({_number(min(values))}-{_number(max(values))})"
            ratio = ""
            if reference:
                ratios = [float(r[key]) / float(r[reference]) for r in runs if r.get(reference)]
                ratio = f"{statistics.median(ratios):.2f}x" if ratios else ""
            row += [cell, ratio]
        row.append(target)
        rows.append(row)
    exact = []
    for backend in backends:
        checks = [r[k] for r in results[backend] for k in r if k.endswith("_exact")]
        ok = all(c["counted"] == c["rows"] and c["rows"] >= c["accepted"] for c in checks)
        exact += [f"{'yes' if ok else 'NO'} ({len(checks)} checks)", ""]
    rows.append(["every count exact (count = rows >= 202s)", *exact, "yes"])
    header = ["figure"]
    for backend in backends:
        processes = results[backend][0].get("signing_processes", 1)
        name = "embedded (SQLite)" if backend == "sqlite" else f"PostgreSQL ({processes} signing)"
        header += [name, "ratio"]
    header.append("target")
    return [header, *rows]


def render(rows: list[list[str]], *, machine: str, minutes: float) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join([
        f"Machine: {machine}. Median of the runs (range); ratios to the do-nothing endpoint in the same run.",
        f"Took {minutes:.1f} min.",
        "",
        *lines,
        "",
    ])
