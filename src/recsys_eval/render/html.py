"""Document -> one self-contained HTML page: inline CSS, inline SVG charts, no script and no
network. Jinja2 with autoescape on; only the SVG made by charts.py is marked safe."""

from __future__ import annotations

from jinja2 import Environment
from markupsafe import Markup

from recsys_eval.render.charts import render_chart
from recsys_eval.render.document import Bullets, Chart, Document, Paragraph, Table

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{ doc.title }} - {{ meta.get('Mode', '') }} - {{ meta.get('Run ID', '') }}</title>
<style>
:root { --good: #1a7f37; --warn: #9a6700; --bad: #cf222e; --neutral: #57606a; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: #1f2328; margin: 0 auto; max-width: 1080px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 4px 0 6px; }
h2 { font-size: 18px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 28px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #57606a; margin: 0 0 12px; padding: 0; list-style: none; }
.meta li { display: inline-block; margin-right: 18px; }
.verdict { border: 2px solid var(--neutral); border-left-width: 10px; border-radius: 6px;
  padding: 10px 16px; margin: 8px 0 16px; background: #f6f8fa; }
.verdict.good { border-color: var(--good); } .verdict.warn { border-color: var(--warn); }
.verdict.bad { border-color: var(--bad); }
.verdict .label { font-size: 26px; font-weight: 700; letter-spacing: .02em; }
.verdict.good .label { color: var(--good); } .verdict.warn .label { color: var(--warn); }
.verdict.bad .label { color: var(--bad); } .verdict.neutral .label { color: var(--neutral); }
.verdict .headline { font-size: 15px; margin: 2px 0 4px; }
.verdict ul { margin: 4px 0 0; padding-left: 20px; }
.verdict .warnings { color: var(--warn); margin-top: 6px; }
nav { font-size: 13px; margin-bottom: 8px; } nav a { margin-right: 12px; color: #0969da; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 2px 0; }
.scroll { overflow-x: auto; }
figure { margin: 8px 0 18px; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #57606a; font-size: 12px; }
</style>
</head>
<body>
<header>
<h1>{{ doc.title }}</h1>
<ul class="meta">{% for k, v in doc.meta %}<li><b>{{ k }}:</b> {{ v }}</li>{% endfor %}</ul>
<section class="verdict {{ doc.verdict.tone }}" id="verdict" aria-label="verdict">
<div class="label">{{ doc.verdict.label }}</div>
<div class="headline">{{ doc.verdict.headline }}</div>
{% if doc.verdict.reasons %}
<ul>{% for r in doc.verdict.reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{% endif %}
{% if doc.verdict.warnings %}
<div class="warnings"><b>Warnings:</b>
<ul>{% for w in doc.verdict.warnings %}<li>{{ w }}</li>{% endfor %}</ul></div>
{% endif %}
</section>
<nav>{% for s in doc.sections %}<a href="#{{ s.anchor }}">{{ s.title }}</a>{% endfor %}</nav>
</header>
<main>
{% for s in sections %}
<section id="{{ s.anchor }}">
<h{{ s.level }}>{{ s.title }}</h{{ s.level }}>
{% for kind, b in s.blocks %}
{% if kind == 'p' %}<p>{{ b.text }}</p>
{% elif kind == 'ul' %}{% if b.title %}<h3>{{ b.title }}</h3>{% endif %}
<ul>{% for i in b.items %}<li>{{ i }}</li>{% endfor %}</ul>
{% elif kind == 'table' %}
<div class="scroll"><table>{% if b.title %}<caption>{{ b.title }}</caption>{% endif %}
<thead><tr>{% for h in b.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in b.rows %}<tr>{% for c in row -%}
<td{% if loop.index0 in b.numeric %} class="num"{% endif %}>{{ c }}</td>
{%- endfor %}</tr>
{% endfor %}</tbody></table></div>
{% elif kind == 'chart' %}
<figure class="chart" data-kind="{{ b.chart.kind }}">{{ b.svg }}
<figcaption>{{ b.chart.alt or b.chart.title }}</figcaption></figure>
{% endif %}
{% endfor %}
</section>
{% endfor %}
</main>
</body>
</html>
"""

_ENV = Environment(autoescape=True, keep_trailing_newline=True, trim_blocks=True)
_TEMPLATE = _ENV.from_string(TEMPLATE)


class _ChartBlock:
    def __init__(self, chart: Chart, index: int) -> None:
        self.chart = chart
        # matplotlib's SVG writer escapes every text it draws; this is the only unescaped HTML
        self.svg = Markup(render_chart(chart, index))


def render_html(doc: Document) -> str:
    counter = 0
    sections = []
    for sec in doc.sections:
        blocks: list[tuple[str, object]] = []
        for block in sec.blocks:
            if isinstance(block, Paragraph):
                blocks.append(("p", block))
            elif isinstance(block, Bullets):
                blocks.append(("ul", block))
            elif isinstance(block, Table):
                blocks.append(("table", block))
            elif isinstance(block, Chart):
                blocks.append(("chart", _ChartBlock(block, counter)))
                counter += 1
        sections.append(
            {"title": sec.title, "anchor": sec.anchor, "level": sec.level, "blocks": blocks}
        )
    return _TEMPLATE.render(doc=doc, sections=sections, meta=dict(doc.meta))
