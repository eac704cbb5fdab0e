"""Small labelled charts as PNG images (Pillow's default font; no plotting library)."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def grouped_bars(groups, series, values, title="", width_per_bar=18, height=220):
    """A grouped bar chart: one group of bars per `groups` entry, one bar per `series`.

    Args:
        groups: group names (x axis), e.g. layers.
        series: bar names (the legend), e.g. concepts.
        values: [len(groups), len(series)] numbers >= 0; each bar is labelled with its value.
        title: drawn at the top.
    Returns:
        uint8 [H, W, 3] image.
    """
    values = np.asarray(values, np.float64).reshape(len(groups), len(series))
    font = ImageFont.load_default()
    gap, margin, top, bottom = width_per_bar, 40, 34, 40
    group_w = width_per_bar * len(series) + gap
    width = max(margin * 2 + group_w * len(groups), 120 + 90 * len(series))
    image = Image.new("RGB", (width, height + top + bottom), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 6), title, fill="black", font=font)
    for s, name in enumerate(series):  # legend
        x = margin + 90 * s
        draw.rectangle([x, 20, x + 10, 30], fill=PALETTE[s % len(PALETTE)])
        draw.text((x + 14, 19), str(name), fill="black", font=font)
    base = top + height
    peak = max(float(values.max()), 1e-12)
    draw.line([margin - 4, base, width - margin // 2, base], fill="black")
    for g, group in enumerate(groups):
        x0 = margin + g * group_w
        for s in range(len(series)):
            v = values[g, s]
            h = int(round((height - 16) * v / peak))
            x = x0 + s * width_per_bar
            draw.rectangle([x, base - h, x + width_per_bar - 3, base],
                           fill=PALETTE[s % len(PALETTE)])
            label = f"{v:g}"
            draw.text((x, base - h - 12), label, fill="black", font=font)
        draw.text((x0, base + 6), str(group), fill="black", font=font)
    return np.asarray(image)


def heatmap(values, cell=24, title=""):
    """A [h, w] array in [0, 1] as a white-to-red grid, each cell labelled in percent
    (NaN: grey, no label). Returns uint8 [H, W, 3]."""
    values = np.asarray(values, np.float64)
    h, w = values.shape
    font = ImageFont.load_default()
    top = 16 if title else 0
    image = Image.new("RGB", (max(w * cell, 8 * len(title)), h * cell + top), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((2, 2), title, fill="black", font=font)
    for r in range(h):
        for c in range(w):
            v = values[r, c]
            box = [c * cell, top + r * cell, (c + 1) * cell - 1, top + (r + 1) * cell - 1]
            if np.isnan(v):
                draw.rectangle(box, fill=(200, 200, 200))
                continue
            fade = int(round(255 * (1 - min(max(v, 0.0), 1.0))))
            draw.rectangle(box, fill=(255, fade, fade))
            draw.text((box[0] + 2, box[1] + 6), f"{100 * v:.0f}",
                      fill="black" if v < 0.6 else "white", font=font)
    return np.asarray(image)


def lines(series, title="", xlabel="", ylabel="", width=520, height=300, log_y=False):
    """A line chart of several series on shared axes, with a legend and the axis ranges.

    Args:
        series: {name: (xs, ys)}, each a sequence of numbers (NaN ys are skipped).
        title, xlabel, ylabel: text drawn at the top, under the x axis, over the y axis.
        log_y: a logarithmic y axis (positive ys only).
    Returns:
        uint8 [H, W, 3] image.
    """
    font = ImageFont.load_default()
    left, right, top, bottom = 56, 16, 44, 34
    image = Image.new("RGB", (width + left + right, height + top + bottom), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 4), title, fill="black", font=font)
    points = {name: [(float(x), float(y)) for x, y in zip(*xy) if np.isfinite(float(y))
                     and (not log_y or float(y) > 0)] for name, xy in series.items()}
    every = [p for ps in points.values() for p in ps]
    if not every:
        raise ValueError("lines needs at least one finite point")

    def axis(values):
        low, high = min(values), max(values)
        return (low, high) if high > low else (low - 1.0, high + 1.0)

    x0, x1 = axis([x for x, _ in every])
    ys = [np.log10(y) if log_y else y for _, y in every]
    y0, y1 = axis(ys)

    def at(x, y):
        y = np.log10(y) if log_y else y
        return (left + (x - x0) / (x1 - x0) * width, top + height - (y - y0) / (y1 - y0) * height)

    draw.rectangle([left, top, left + width, top + height], outline="black")
    for value, anchor in ((x0, left), (x1, left + width)):
        draw.text((anchor - 10, top + height + 4), f"{value:g}", fill="black", font=font)
    for value, anchor in ((y0, top + height), (y1, top)):
        shown = 10 ** value if log_y else value
        draw.text((2, anchor - 6), f"{shown:.4g}", fill="black", font=font)
    draw.text((left + width // 2 - 3 * len(xlabel), top + height + 18), xlabel, fill="black",
              font=font)
    draw.text((2, top - 14), ylabel, fill="black", font=font)
    x = left
    for s, (name, ps) in enumerate(points.items()):
        colour = PALETTE[s % len(PALETTE)]
        draw.rectangle([x, 20, x + 10, 30], fill=colour)
        draw.text((x + 14, 19), str(name), fill="black", font=font)
        x += 30 + int(draw.textlength(str(name), font=font))
        xy = [at(px, py) for px, py in sorted(ps)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for cx, cy in xy:
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
    return np.asarray(image)
