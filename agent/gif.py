"""Episode GIFs: each env frame with the observation text and the action beside it."""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from agent.actions import ACTION_PHRASES

PANEL_WIDTH = 360


def _panel(lines: list[str], height: int) -> Image.Image:
    panel = Image.new("RGB", (PANEL_WIDTH, height), (250, 250, 250))
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default()
    y = 6
    for line in lines:
        for chunk in textwrap.wrap(line, 52) or [""]:
            if y > height - 14:
                return panel
            draw.text((6, y), chunk, fill=(20, 20, 20), font=font)
            y += 13
    return panel


def episode_frames(episode) -> list[np.ndarray]:
    out = []
    for i, frame in enumerate(episode.frames):
        image = Image.fromarray(frame)
        if image.height < 320:  # small grids render tiny; scale up so the text panel fits beside
            factor = -(-320 // image.height)
            image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
        if i < len(episode.steps):
            step = episode.steps[i]
            d = step.decision
            lines = [f"seed {episode.seed}  step {step.t}", step.observation, ""]
            if d.raw_text is not None:
                lines.append(f"model: {d.raw_text.strip()[:120]}")
            prob = f"  p={d.probs[d.action]:.2f}" if d.probs else ""
            lines.append(f"action: {step.phrase or ACTION_PHRASES[step.executed]}{prob}" + ("  (shielded)" if step.shielded else ""))
        else:
            lines = [f"seed {episode.seed}: {'SUCCESS' if episode.success else 'failure'}",
                     f"return {episode.total_return:.2f} in {len(episode.steps)} steps"]
        canvas = Image.new("RGB", (image.width + PANEL_WIDTH, image.height), (255, 255, 255))
        canvas.paste(image, (0, 0))
        canvas.paste(_panel(lines, image.height), (image.width, 0))
        out.append(np.asarray(canvas))
    return out


def write_gif(episodes, path: str, seconds_per_frame: float = 0.5) -> None:
    import imageio.v2 as imageio

    frames = [f for e in episodes for f in episode_frames(e)]
    imageio.mimsave(path, frames, duration=seconds_per_frame, loop=0)
