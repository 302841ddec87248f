"""The SLO report as Markdown or as a self-contained HTML page (an inline SVG burn-down per SLO,
no scripts, nothing fetched)."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any

from slo import windows

VERDICTS = {"met": "met", "at_risk": "at risk", "breached": "breached", "no_data": "no data"}


def _pct(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _window(slo: dict[str, Any]) -> str:
    window = slo["window"]
    partial = "" if window["complete"] else " (in progress)"
    return f"{window['label']}: {window['start']} to {window['end']}{partial}"


def _alerts_rows(slo: dict[str, Any]) -> list[list[str]]:
    return [
        [
            alert["alertname"],
            ", ".join(f"{k}={v}" for k, v in alert["labels"].items() if k in ("severity", "sloth_severity")),
            alert["first_fired"],
            alert["last_fired"],
            windows.humanize(alert["firing_seconds"]),
            str(alert["episodes"]),
        ]
        for alert in slo["alerts"]
    ]


ALERT_HEADER = ["alert", "labels", "first fired", "last fired", "firing for", "episodes"]


def _summary_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"{slo['service']}/{slo['slo']}",
            _pct(slo["objective"], 2),
            _pct(slo["sli"]),
            _pct(slo["error_budget"]["consumed_ratio"], 1),
            _pct(slo["error_budget"]["remaining_ratio"], 1),
            str(len(slo["alerts"])),
            VERDICTS[slo["verdict"]],
        ]
        for slo in report["slos"]
    ]


SUMMARY_HEADER = ["SLO", "objective", "SLI", "budget consumed", "budget left", "alerts", "verdict"]


def _details(slo: dict[str, Any]) -> list[tuple[str, str]]:
    events = slo["events"] or {}
    budget = slo["error_budget"]
    return [
        ("window", _window(slo)),
        ("objective", _pct(slo["objective"], 3)),
        ("SLI achieved", _pct(slo["sli"])),
        ("good / bad / total events", " / ".join(_num(events.get(k)) for k in ("good", "bad", "total"))),
        ("error budget allowed / consumed / remaining (events)",
         " / ".join(_num(budget[k]) for k in ("allowed_events", "consumed_events", "remaining_events"))),
        ("error budget consumed / remaining", f"{_pct(budget['consumed_ratio'], 1)} / {_pct(budget['remaining_ratio'], 1)}"),
        ("burn rate over the window", _rate(slo["burn_rate"])),
        ("verdict", VERDICTS[slo["verdict"]]),
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


def title(report: dict[str, Any]) -> str:
    if report["month"]:
        return f"SLO report {report['month']}"
    return f"SLO report, {report['period'] or 'each SLO over its period'} to {report['end']}"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# {title(report)}", "", f"Prometheus: {report['prometheus']}", ""]
    lines += _md_table(SUMMARY_HEADER, _summary_rows(report))
    for slo in report["slos"]:
        lines += ["", f"## {slo['service']} / {slo['slo']}", ""]
        if slo["description"]:
            lines += [slo["description"], ""]
        lines += _md_table(["", ""], [[k, v] for k, v in _details(slo)])
        lines += [""]
        lines += _md_table(ALERT_HEADER, _alerts_rows(slo)) if slo["alerts"] else ["No alert fired in the window."]
    return "\n".join(lines) + "\n"


# --- HTML -----------------------------------------------------------------------------------

_W, _H, _PAD = 640, 220, 40


def _svg(slo: dict[str, Any]) -> str:
    points = slo["burn_down"]
    if len(points) < 2:
        return "<p>No traffic in the window: no burn-down.</p>"
    times = [datetime.fromisoformat(p["time"].replace("Z", "+00:00")).timestamp() for p in points]
    values = [p["remaining_ratio"] for p in points]
    low = min(0.0, min(values))
    span_t, span_v = (times[-1] - times[0]) or 1, (1 - low) or 1

    def x(t: float) -> float:
        return _PAD + (t - times[0]) / span_t * (_W - 2 * _PAD)

    def y(v: float) -> float:
        return _PAD / 2 + (1 - v) / span_v * (_H - _PAD)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, values))
    return "\n".join([
        f'<svg class="burn" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        f'aria-label="error budget left over the window">',
        f'<line x1="{x(times[0]):.1f}" y1="{y(0):.1f}" x2="{x(times[-1]):.1f}" y2="{y(0):.1f}" class="zero"/>',
        f'<line x1="{x(times[0]):.1f}" y1="{y(1):.1f}" x2="{x(times[-1]):.1f}" y2="{y(0):.1f}" class="even"/>',
        f'<polyline points="{line}" class="left"/>',
        f'<text x="4" y="{y(1) + 4:.1f}">100%</text><text x="4" y="{y(0) + 4:.1f}">0%</text>',
        f'<text x="{x(times[0]):.1f}" y="{_H - 4}">{escape(points[0]["time"][:10])}</text>',
        f'<text x="{x(times[-1]):.1f}" y="{_H - 4}" text-anchor="end">{escape(points[-1]["time"][:16])}</text>',
        "</svg>",
    ])


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
svg.burn { background: #fafafa; border: 1px solid #ddd; }
svg .zero { stroke: #999; stroke-dasharray: 4 3; }
svg .even { stroke: #bbb; stroke-dasharray: 2 4; }
svg .left { fill: none; stroke: #c0392b; stroke-width: 2; }
svg text { font-size: 11px; fill: #555; }
.verdict-breached { color: #c0392b; } .verdict-at_risk { color: #d68910; } .verdict-met { color: #1e8449; }
"""


def html(report: dict[str, Any]) -> str:
    sections = []
    for slo in report["slos"]:
        alerts = (
            _html_table(ALERT_HEADER, _alerts_rows(slo)) if slo["alerts"] else "<p>No alert fired in the window.</p>"
        )
        sections.append(
            f'<section id="{escape(slo["service"])}-{escape(slo["slo"])}">'
            f'<h2>{escape(slo["service"])} / {escape(slo["slo"])} '
            f'<span class="verdict-{escape(slo["verdict"])}">({escape(VERDICTS[slo["verdict"]])})</span></h2>'
            f'<p>{escape(slo["description"])}</p>'
            f'{_html_table(["", ""], [[k, v] for k, v in _details(slo)])}'
            f"<h3>Error budget left over the window</h3>{_svg(slo)}"
            f"<h3>Alerts that fired</h3>{alerts}</section>"
        )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title(report))}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title(report))}</h1><p>Prometheus: {escape(report['prometheus'])}</p>"
        f"{_html_table(SUMMARY_HEADER, _summary_rows(report))}{''.join(sections)}</body></html>\n"
    )


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
