"""The organizer's chart of signatures over time, drawn on the server as SVG (no JavaScript):
bars scaled to the tallest bucket."""

from datetime import datetime

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 220, 28


def chart(buckets: list[dict], bucket: str) -> dict:
    """Bars for an SVG chart of signatures per bucket, scaled to the tallest; axis labels at the
    first, middle and last bucket."""
    if not buckets:
        return {"bars": [], "labels": [], "max": 0, "width": CHART_WIDTH, "height": CHART_HEIGHT}
    tallest = max(b["count"] for b in buckets) or 1
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    step = inner_w / len(buckets)
    bars = []
    for i, b in enumerate(buckets):
        height = max(1.0, inner_h * b["count"] / tallest) if b["count"] > 0 else 0.0
        start = datetime.fromisoformat(b["start"].replace("Z", "+00:00"))
        label = start.strftime("%d %b %H:00") if bucket == "hour" else start.strftime("%d %b %Y")
        bars.append({"x": round(CHART_PAD + i * step + step * 0.1, 1), "y": round(CHART_PAD + inner_h - height, 1),
                     "w": round(max(1.0, step * 0.8), 1), "h": round(height, 1), "count": b["count"], "label": label})
    picks = sorted({0, len(bars) // 2, len(bars) - 1})
    labels = [{"x": bars[i]["x"], "text": bars[i]["label"]} for i in picks]
    return {"bars": bars, "labels": labels, "max": tallest, "width": CHART_WIDTH, "height": CHART_HEIGHT}
