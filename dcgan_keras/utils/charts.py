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
