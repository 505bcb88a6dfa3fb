"""The adherence picture: one SVG document of four panels, drawn with pygal from the same
`adherence.Adherence` the JSON answer is made of (docs/ADHERENCE.md, "A picture of adherence").

1. completion by week (bars, percent);
2. helpfulness by kind (bars, mean 0-10, kinds that were rated);
3. SUDS before, at peak and after each exposure practice (grouped bars, 0-100);
4. PHQ-9 and GAD-7 over the window (lines), on their severity bands (app.services.measures).

Each panel is a pygal chart, rendered, parsed and placed as a nested `<svg>` in one outer
`<svg>`, top to bottom. What the picture may carry is decided here, because it may be emailed:
client ids, dates, counts, rates and scores, never a name, a note, or an answer's free text (an
exposure practice is labelled by its number and date, not by the step the client wrote).

It loads and runs nothing: pygal's script references are off (`js=[]`), the config script pygal
writes anyway is removed with every other `<script>`, and so is every link that is not to an
element of the document itself (`_scrub`). Its only style is pygal's inline `<style>`.

Rendering is CPU work (about 25 ms for a month of data, see docs/ADHERENCE.md): the route runs
it in a worker thread.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pygal
from pygal.style import Style

from app.services.adherence import Adherence, Week
from app.services.measures import band_ranges

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("xlink", XLINK_NS)

WIDTH = 800
HEADER_HEIGHT = 84
PANEL_HEIGHT = 300
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
NO_DATA = "no data yet"

COMPLETION_TITLE = "Completion by week"
HELPFULNESS_TITLE = "Helpfulness by kind (mean, 0-10)"
SUDS_TITLE = "SUDS per exposure practice (0-100)"
MEASURES = {"phq9": "PHQ-9 over time", "gad7": "GAD-7 over time"}
MEASURE_MAX = {"phq9": 27, "gad7": 21}
# Shades of the severity bands, mildest first (the last is used for "severe" on either scale).
BAND_SHADES = ("#e3f2e5", "#f4f8d8", "#fff1cc", "#ffe2c4", "#fcd9d6")
# The score panels run a little past the window's end: the band names are written there.
BAND_GUTTER = 0.5

Chart = Any  # a pygal chart: pygal has no type hints


def render(result: Adherence) -> str:
    """The whole picture, as the text of one SVG document."""
    half = WIDTH // 2
    panels = [
        ("completion", _completion(result), 0, WIDTH),
        ("helpfulness", _helpfulness(result), 0, WIDTH),
        ("suds", _suds(result), 0, WIDTH),
        ("phq9", _measure(result, "phq9"), 0, half),
        ("gad7", _measure(result, "gad7"), half, WIDTH - half),
    ]
    height = HEADER_HEIGHT + 4 * PANEL_HEIGHT
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "viewBox": f"0 0 {WIDTH} {height}",
            "width": str(WIDTH),
            "height": str(height),
            "role": "img",
        },
    )
    _header(root, result)
    row = 0
    for name, chart, x, width in panels:
        if x == 0 and name != "completion":
            row += 1
        nested = _panel_tree(chart)
        nested.attrib.update(
            {
                "x": str(x),
                "y": str(HEADER_HEIGHT + row * PANEL_HEIGHT),
                "width": str(width),
                "height": str(PANEL_HEIGHT),
                "data-panel": name,
            }
        )
        root.append(nested)
    _scrub(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


# The header: what the picture is of, with ids and dates only.


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%-d %b %Y}"


def title_of(result: Adherence) -> str:
    return (
        f"Homework adherence of client {result.client_id}, "
        f"{_day(result.start)} to {_day(result.end)} (UTC)"
    )


def _summary(result: Adherence) -> str:
    overall = result.overall
    if not overall.counted:
        return f"Nothing counted in this window: {NO_DATA}."
    parts = [f"{overall.completed} of {overall.counted} done ({_percent(overall.completion_rate)})"]
    if overall.on_time_rate is not None:
        parts.append(f"on time {_percent(overall.on_time_rate)}")
    parts.append(f"best streak {overall.best_streak}, current {overall.current_streak}")
    if overall.mean_helpfulness is not None:
        parts.append(f"helpfulness {overall.mean_helpfulness:.1f}/10")
    return " · ".join(parts)


def _header(root: ET.Element, result: Adherence) -> None:
    ET.SubElement(root, "title").text = title_of(result)
    ET.SubElement(root, "rect", {"width": "100%", "height": "100%", "fill": "#ffffff"})
    heading = {"font-family": FONT, "fill": "#212121"}
    ET.SubElement(
        root,
        "text",
        {**heading, "x": "24", "y": "32", "font-size": "18", "font-weight": "bold"},
    ).text = f"Homework adherence · {result.client_id}"
    ET.SubElement(
        root, "text", {**heading, "x": "24", "y": "54", "font-size": "13", "fill": "#616161"}
    ).text = f"{_day(result.start)} to {_day(result.end)} (UTC), as of {_day(result.as_of)}"
    ET.SubElement(
        root, "text", {**heading, "x": "24", "y": "74", "font-size": "13"}
    ).text = _summary(result)


# The panels.


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.0f}%"


def _style(*colors: str, **extra: Any) -> Style:
    return Style(
        background="#ffffff",
        plot_background="#ffffff",
        font_family=FONT,
        title_font_size=15,
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        value_font_size=11,
        no_data_font_size=20,
        opacity=".85",
        colors=colors,
        **extra,
    )


def _chart(
    kind: Callable[..., Chart],
    title: str,
    width: int,
    *colors: str,
    has_data: bool,
    style: dict[str, Any] | None = None,
    **config: Any,
) -> Chart:
    """A pygal chart as every panel draws it: no script, no XML declaration, fixed size."""
    defaults: dict[str, Any] = {"show_legend": False, "truncate_label": -1, "margin": 16}
    if not has_data:
        # An empty frame with the words in it: pygal would label axes of no values.
        config.pop("y_labels", None)
        config.update(show_x_labels=False, show_y_labels=False, show_y_guides=False)
    return kind(
        js=[],
        disable_xml_declaration=True,
        width=width,
        height=PANEL_HEIGHT,
        title=title,
        style=_style(*colors, **(style or {})),
        no_data_text=NO_DATA,
        **{**defaults, **config},
    )


def week_label(week: Week) -> str:
    count = f"{week.completed}/{week.counted}" if week.counted else "none due"
    return f"{week.start.astimezone(UTC):%-d %b} · {count}"


def _completion(result: Adherence) -> Chart:
    chart = _chart(
        pygal.Bar,
        COMPLETION_TITLE,
        WIDTH,
        "#3f7fbf",
        has_data=any(week.counted for week in result.by_week),
        range=(0, 100),
        y_labels=[0, 25, 50, 75, 100],
        print_values=True,
        value_formatter=lambda value: f"{value:.0f}%",
        x_label_rotation=30 if len(result.by_week) > 8 else 0,
        show_minor_x_labels=len(result.by_week) <= 16,
    )
    if any(week.counted for week in result.by_week):
        chart.x_labels = [week_label(week) for week in result.by_week]
        chart.add(
            "Done",
            [
                None if week.completion_rate is None else week.completion_rate * 100
                for week in result.by_week
            ],
        )
    return chart


def kind_label(kind: str) -> str:
    return {"phq9": "PHQ-9", "gad7": "GAD-7"}.get(kind, kind.replace("_", " ").capitalize())


def _helpfulness(result: Adherence) -> Chart:
    rated = [(kind, f) for kind, f in result.by_kind.items() if f.mean_helpfulness is not None]
    chart = _chart(
        pygal.Bar,
        HELPFULNESS_TITLE,
        WIDTH,
        "#7b5ea7",
        has_data=bool(rated),
        range=(0, 10),
        y_labels=[0, 2, 4, 6, 8, 10],
        print_values=True,
        value_formatter=lambda value: f"{value:.1f}",
    )
    if rated:
        chart.x_labels = [f"{kind_label(kind)} · {f.rated} rated" for kind, f in rated]
        chart.add("Mean helpfulness", [f.mean_helpfulness for _, f in rated])
    return chart


def practice_label(number: int, completed_at: datetime) -> str:
    """An exposure practice by its number and date: the step is the client's own words."""
    return f"#{number} · {completed_at.astimezone(UTC):%-d %b}"


def _suds(result: Adherence) -> Chart:
    practices = result.exposure
    chart = _chart(
        pygal.Bar,
        SUDS_TITLE,
        WIDTH,
        "#5b9bd5",
        "#e0604f",
        "#59a14f",
        has_data=bool(practices),
        range=(0, 100),
        y_labels=[0, 25, 50, 75, 100],
        show_legend=bool(practices),
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        print_values=len(practices) <= 8,
        value_formatter=lambda value: f"{value:.0f}",
        x_label_rotation=30 if len(practices) > 10 else 0,
        show_minor_x_labels=len(practices) <= 20,
    )
    if practices:
        chart.x_labels = [practice_label(n, p.completed_at) for n, p in enumerate(practices, 1)]
        chart.add("Before", [p.suds_before for p in practices])
        chart.add("Peak", [p.suds_peak for p in practices])
        chart.add("After", [p.suds_after for p in practices])
    return chart


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def _date_label(timestamp: float) -> str:
    return f"{datetime.fromtimestamp(timestamp, UTC):%-d %b}"


def _measure(result: Adherence, measure: str) -> Chart:
    points = [m for m in result.measures if m.kind == measure]
    top = MEASURE_MAX[measure]
    chart = _chart(
        pygal.XY,
        MEASURES[measure],
        WIDTH // 2,
        "#37474f",
        has_data=bool(points),
        range=(0, top),
        xrange=(_timestamp(result.start), _gutter_end(result)),
        y_labels=[low for low, _, _ in band_ranges(measure)] + [top],
        x_value_formatter=_date_label,
        print_values=True,
        dots_size=4,
        style={"stroke_width": "2.5", "stroke_opacity": "1"},
        show_x_guides=False,
    )
    if points:
        chart.x_labels = [_timestamp(week.start) for week in result.by_week]
        chart.add(
            MEASURES[measure].split()[0],
            [(_timestamp(m.completed_at), m.score) for m in points],
            formatter=lambda xy: f"{xy[1]:.0f}",  # the score alone, not "date: score"
        )
        chart.xml_filters.append(_band_shading(chart, measure, _timestamp(result.end)))
    return chart


def band_label(band: str) -> str:
    return band.replace("_", " ")


def _gutter_end(result: Adherence) -> float:
    start, end = _timestamp(result.start), _timestamp(result.end)
    return end + (end - start) * BAND_GUTTER


def _band_shading(chart: Chart, measure: str, window_end: float) -> Callable[[Any], Any]:
    """A pygal XML filter that shades the severity bands behind the plot. It runs while pygal
    still holds the chart's view, the map from scores to the plot's coordinates."""
    bands = band_ranges(measure)
    top = MEASURE_MAX[measure]

    def shade(root: Any) -> Any:
        plot = next(e for e in root.iter() if _tag(e) == "g" and e.get("class") == "plot")
        width = chart.view.width
        x_label = chart.view.x(window_end) + 20
        # Integer scores: a band's edges are half way between its totals and its neighbours'.
        for index, (low, high, band) in enumerate(bands):
            y_top = chart.view.y(min(high + 0.5, top))
            y_bottom = chart.view.y(max(low - 0.5, 0))
            shade_of = BAND_SHADES[index if band != "severe" else -1]
            rect = plot.makeelement(
                "rect",
                {
                    "x": "0",
                    "y": f"{y_top:.1f}",
                    "width": f"{width:.1f}",
                    "height": f"{y_bottom - y_top:.1f}",
                    "fill": shade_of,
                    "class": f"band band-{band}",
                },
            )
            label = plot.makeelement(
                "text",
                {
                    "x": f"{x_label:.1f}",
                    "y": f"{(y_top + y_bottom) / 2 + 3.5:.1f}",
                    "font-family": FONT,
                    "font-size": "9.5",
                    "fill": "#5f5f5f",
                    "class": "band-label",
                },
            )
            label.text = band_label(band)
            # After the plot's background, before the axes and the line.
            plot.insert(1 + 2 * index, rect)
            plot.insert(2 + 2 * index, label)
        return root

    return shade


# Assembly and the guarantees.


def _tag(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _panel_tree(chart: Chart) -> ET.Element:
    """A rendered chart as an element of this module's tree (whatever XML library pygal used),
    without its comments, which ElementTree's parser drops. Its elements are in the SVG
    namespace that the outer `<svg>` declares (`xmlns`), as pygal writes them."""
    # pygal's own output, made of our figures, escaped by its serializer: not untrusted XML.
    nested = ET.fromstring(chart.render(is_unicode=True))  # noqa: S314
    for element in nested.iter():
        element.tag = _tag(element)
    return nested


def _scrub(root: ET.Element) -> None:
    """No script, and no reference to anything outside the document: whatever pygal writes."""
    for parent in list(root.iter()):
        for child in list(parent):
            if _tag(child) in ("script", "foreignObject"):
                parent.remove(child)
    for element in root.iter():
        for name in [n for n in element.attrib if n.rsplit("}", 1)[-1] == "href"]:
            if not element.attrib[name].startswith("#"):
                del element.attrib[name]
        for name in [n for n in element.attrib if n.rsplit("}", 1)[-1].startswith("on")]:
            del element.attrib[name]
