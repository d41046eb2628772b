"""The page of `mask-train eda`: seaborn plots on matplotlib's Agg canvas (no display needed),
inlined as PNG so report.html is one file, with the numbers as tables beside them."""
from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from core.imageio import ImageReadError, load_image
from core.labels import LABEL_NAMES, YOUNG_AGE_LIMIT, class_names
from training.config import EdaConfig
from training.data.cache import read_png
from training.data.eda_rows import HEADS, HOWS, STATUSES, UNKNOWN, EdaSummary, Photo

THUMB = 96


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }}
nav a {{ margin-right: 1em; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
.note {{ color: #666; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">{subtitle}</p>
<nav>{nav}</nav>
{body}
</body>
</html>
"""


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _thumbnail(photo: Photo) -> np.ndarray | None:
    """RGB square: the cached face crop, else the photo's centre square."""
    try:
        image = read_png(photo.crop) if photo.crop is not None else load_image(photo.path).image
    except (OSError, ImageReadError):
        return None
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    square = cv2.resize(image[y : y + side, x : x + side], (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(square, cv2.COLOR_BGR2RGB)


def _sample_grid(photos: list[Photo], groups: Sequence[str], key, per_group: int, seed: int, title: str) -> str:
    rng = np.random.default_rng(seed)
    members: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        members[key(p)].append(p)
    figure = _figure(1.1 * per_group + 2.2, 1.1 * len(groups) + 0.5)
    figure.suptitle(title)
    axes = figure.subplots(len(groups), per_group, squeeze=False)
    for row, group in enumerate(tqdm(groups, desc="samples", unit="class", leave=False)):
        every = members.get(group, [])
        pool = [p for p in every if p.crop is not None] or every  # the face crops when the cache has them
        chosen = [pool[i] for i in sorted(rng.choice(len(pool), min(per_group, len(pool)), replace=False))] if pool else []
        for col in range(per_group):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            image = _thumbnail(chosen[col]) if col < len(chosen) else None
            if image is not None:
                ax.imshow(image)
            if col == 0:
                ax.set_ylabel(f"{group}\n({len(every)})", rotation=0, ha="right", va="center", fontsize=8)
    return _png(figure)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}">\n<tr>{head}</tr>\n{body}\n</table>'


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _section(section_id: str, title: str, *parts: str) -> str:
    return f'<section id="{section_id}">\n<h2>{html.escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _sections(summary: EdaSummary, photos: list[Photo], sizes: list[tuple[int, int]], config: EdaConfig) -> list[tuple[str, str, str]]:
    """(id, title, html) of each section, in order."""
    import pandas as pd
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    out: list[tuple[str, str, str]] = []

    def add(section_id: str, title: str, *parts: str) -> None:
        out.append((section_id, title, "\n".join(parts)))

    rows = [(s, v["photos"], v["people"]) for s, v in summary.sources.items()]
    problems = f"{summary.reader_problems} problems reported by the dataset readers (prepare lists them in problems.csv)"
    add("overview", "Overview", _table(["source", "photos", "people"], [*rows, ("all", summary.photos, summary.people)], "t-sources"),
        _note("a photo here is one labelled face: a photo with several known face boxes counts once per box"),
        _note(problems) if summary.reader_problems else "")

    figure = _figure(12, 3.2)
    tables = []
    for ax, head in zip(figure.subplots(1, 3), HEADS):
        counts = summary.heads[head]
        labels = list(counts)
        sns.barplot(x=labels, y=[counts[k] for k in labels], ax=ax, hue=labels, legend=False,
                    palette=[*sns.color_palette("deep", len(labels) - 1), (0.7, 0.7, 0.7)])
        ax.set_title(head)
        total = sum(counts.values())
        tables.append(_table([head, "photos", "share"], [(k, v, _share(v, total)) for k, v in counts.items()], f"t-{head}"))
    add("heads", "Labels per head", _png(figure), *tables)

    figure = _figure(12, 5)
    ax = figure.subplots()
    names = list(summary.classes)
    sns.barplot(x=[summary.classes[n] for n in names], y=[f"{i:2d} {n}" for i, n in enumerate(names)], ax=ax, color="#4c72b0")
    ax.set_xlabel("photos with all three labels")
    add("classes", "The 18 classes", _png(figure),
        _table(["class", "name", "photos"], [(i, n, summary.classes[n]) for i, n in enumerate(names)], "t-classes"))

    aged = [p for p in photos if p.age is not None]
    if aged:
        figure = _figure(12, 4)
        ax = figure.subplots()
        frame = pd.DataFrame({"age": [p.age for p in aged], "gender": [p.gender or UNKNOWN for p in aged]})
        sns.histplot(frame, x="age", hue="gender", multiple="stack", binwidth=1, ax=ax)
        for boundary in (YOUNG_AGE_LIMIT, config.age_boundary):
            ax.axvline(boundary, color="black", linestyle="--", linewidth=1)
            ax.text(boundary + 0.5, ax.get_ylim()[1] * 0.95, f"{boundary}", va="top")
        ages = summary.ages
        add("ages", "Ages", _png(figure),
            _note(f"{ages['n']:g} photos with an age in years (min {ages['min']:g}, median {ages['median']:g}, max {ages['max']:g}); "
                  f"groups <{YOUNG_AGE_LIMIT}, {YOUNG_AGE_LIMIT}-{config.age_boundary - 1}, {config.age_boundary}+ (dashed lines)"))
    else:
        add("ages", "Ages", _note("no photo has an age in years"))

    figure = _figure(5, 3)
    ax = figure.subplots()
    matrix = [[summary.gender_age[g][a] for a in LABEL_NAMES["age"]] for g in LABEL_NAMES["gender"]]
    sns.heatmap(pd.DataFrame(matrix, index=list(LABEL_NAMES["gender"]), columns=list(LABEL_NAMES["age"])),
                annot=True, fmt="d", cmap="Blues", ax=ax, cbar=False)
    add("gender-age", "Gender × age group", _png(figure),
        _table(["gender", *LABEL_NAMES["age"]], [(g, *row) for g, row in zip(LABEL_NAMES["gender"], matrix)], "t-gender-age"))

    figure = _figure(8, 3)
    ax = figure.subplots()
    counts = summary.photos_per_person
    ax.bar(range(len(counts)), list(counts.values()), color="#55a868")
    ax.set_xticks(range(len(counts)), [str(k) for k in counts])
    ax.set_xlabel("photos of the person")
    ax.set_ylabel("people")
    add("people", "Photos per person", _png(figure), _table(["photos of the person", "people"], list(counts.items()), "t-people"))

    info = summary.sizes
    if sizes:
        figure = _figure(6, 5)
        ax = figure.subplots()
        sns.scatterplot(pd.DataFrame(sizes, columns=["width", "height"]), x="width", y="height", alpha=0.3, ax=ax, edgecolor=None)
        common = [(f"{w}×{h}", n) for (w, h), n in Counter(sizes).most_common(8)]
        add("sizes", "Photo sizes", _png(figure),
            _note(f"{info['read']} photos read ({info['unreadable']} unreadable); median {info['median_width']}×{info['median_height']} px"),
            _table(["size (w×h)", "photos"], common, "t-sizes"))
    else:
        add("sizes", "Photo sizes", _note("no photo could be read"))

    if summary.detection:
        add("detection", "Face detection (from the cache)", *_detection(summary.detection))
    else:
        add("detection", "Face detection (from the cache)", _note("no cache given (--cache): nothing to show"))

    if config.samples:
        what = "the cached face crops (what the classifier sees)" if config.cache is not None else "the photos' centre squares"
        add("samples", "Samples per class", _note(f"random photos of each class: {what}"),
            _sample_grid(photos, class_names(), lambda p: p.class_name, config.samples, config.seed, "18 classes (photos)"),
            _sample_grid(photos, LABEL_NAMES["mask"], lambda p: p.mask, config.samples, config.seed + 1, "mask, every source (photos)"))
    else:
        add("samples", "Samples per class", _note("--samples 0: none drawn"))
    return out


def _detection(detection: dict[str, dict[str, int]]) -> list[str]:
    """Stacked shares of each outcome per source, and the table."""
    figure = _figure(10, 0.6 * len(detection) + 1.5)
    ax = figure.subplots()
    sources = list(detection)
    totals = np.array([sum(detection[s][k] for k in STATUSES) for s in sources], dtype=float)
    left = np.zeros(len(sources))
    for status, colour in zip(STATUSES, ("#55a868", "#c44e52", "#8172b3", "#ccb974", "#999999")):
        share = np.array([detection[s][status] for s in sources]) / np.maximum(totals, 1)
        ax.barh(sources, share, left=left, label=status, color=colour)
        left += share
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the rows")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    rows = []
    for source, c in detection.items():
        done = sum(c[k] for k in STATUSES if k != "pending")
        rows.append((source, done, *(c[k] for k in STATUSES), _share(c["ok"], done), *(c[k] for k in HOWS)))
    return [
        _png(figure),
        _table(["source", "rows done", *STATUSES, "success", *HOWS], rows, "t-detection"),
        _note("success = ok / rows done; padded = found only after padding the border; box = a known box, cropped without detection"),
    ]


def page_html(summary: EdaSummary, photos: list[Photo], sizes: list[tuple[int, int]], config: EdaConfig) -> str:
    """report.html: every section, with a navigation bar."""
    sections = _sections(summary, photos, sizes, config)
    where = ", ".join(config.data) if config.data else f"cache {config.cache}"
    return PAGE.format(
        title="Mask Checker training data",
        subtitle=html.escape(f"{summary.photos} labelled photos of {summary.people} people from {where}; age boundary {config.age_boundary}"),
        nav="".join(f'<a href="#{sid}">{html.escape(title)}</a>' for sid, title, _ in sections),
        body="\n".join(_section(sid, title, part) for sid, title, part in sections),
    )
