"""Write SVG (and PNG when rsvg-convert or cairosvg is available) screenshots of the dashboard's views.

The app runs for real (headless) on the shipped demo recording with a fixed clock, so the images are
the same on every run.  Run:  /work/venv/bin/python scripts/screenshots.py [--out screenshots]
PNG needs `rsvg-convert` (apt-get install librsvg2-bin, plus fonts-firacode for the right font) or
`pip install cairosvg`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.screen import ModalScreen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tui.core.config import Settings  # noqa: E402
from tui.core.control.client import ControlClient  # noqa: E402
from tui.core.feed.control import ControlSnapshot, TransformRow  # noqa: E402
from tui.core.feed.demo import DemoDriver  # noqa: E402
from tui.core.feed.feed import DashboardFeed  # noqa: E402
from tui.core.feed.recording import DEMO_RECORDING, load_recording  # noqa: E402
from tui.core.transforms.registry import TRANSFORM_ORDER  # noqa: E402
from tui.ui.app import make_app  # noqa: E402
from tui.ui.screens.restart_dialog import RestartDialog, RestartRequest  # noqa: E402
from tui.ui.screens.transforms import TransformsScreen  # noqa: E402

CLOCK_BASE = 1_767_225_600.0
RECORDING = load_recording(DEMO_RECORDING)
MID_PROMPT = [e.t for e in RECORDING.entries if e.type == "log" and "prompt processing, n_tokens" in e.data]

# name, size, keys to press, replay up to (seconds into the recording; None = all)
VIEWS: tuple[tuple[str, tuple[int, int], tuple[str, ...], float | None], ...] = (
    ("main-80x24", (80, 24), (), None),
    ("main-120x40", (120, 40), (), None),
    ("slots-progress-80x24", (80, 24), ("s",), MID_PROMPT[len(MID_PROMPT) // 2] if MID_PROMPT else None),
    ("slots-120x40", (120, 40), ("s",), None),
    ("log-120x40", (120, 40), ("l",), None),
    ("mcp-80x24", (80, 24), ("m",), None),
    ("detail-100x36", (100, 36), ("enter",), None),
    ("help-80x24", (80, 24), ("question_mark",), None),
    ("narrow-60x24", (60, 24), (), None),
)


def transforms_screen() -> ModalScreen[None]:
    """The transforms screen with fixed switch states (what `t` shows against a proxy)."""
    rows = tuple(TransformRow(n, n in ("stabilize", "slim_results"), 0) for n in TRANSFORM_ORDER)
    rows = tuple(dataclasses.replace(r, saved_tokens=4_812) if r.name == "slim_results" else r for r in rows)
    snapshot = ControlSnapshot(
        answers=True, address="127.0.0.1:3000", transforms=rows, transform_saved_tokens=4_812
    )
    return TransformsScreen(snapshot, ControlClient("http://127.0.0.1:3000"))


def restart_dialog() -> ModalScreen[RestartRequest | None]:
    """The restart dialog as `r` opens it."""
    note = "llama-server up at http://127.0.0.1:8080, started by ctxbudget (pid 4242): tiny-swa.gguf"
    return RestartDialog(ctx_size=131_072, parallel=2, note=note)


# name, size, screen pushed over the whole replay
DIALOG_SHOTS: tuple[tuple[str, tuple[int, int], Callable[[], ModalScreen[Any]]], ...] = (
    ("transforms-120x40", (120, 40), transforms_screen),
    ("restart-100x30", (100, 30), restart_dialog),
)


async def shoot(
    name: str,
    size: tuple[int, int],
    keys: tuple[str, ...],
    until: float | None,
    out: Path,
    screen: Callable[[], ModalScreen[Any]] | None = None,
) -> Path:
    """Run the app headless, press keys (or push a screen), save an SVG."""
    feed = DashboardFeed(DemoDriver(RECORDING, speed=0, until=until, clock_base=CLOCK_BASE))
    app = make_app(feed, Settings(), tz=dt.UTC)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        if screen is not None:
            await app.push_screen(screen())
        await app.workers.wait_for_complete()
        await pilot.pause()
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


def to_png(svg: Path) -> Path | None:
    """PNG next to the SVG; leading spaces of text spans survive only with xml:space=preserve."""
    text = svg.read_text(encoding="utf-8").replace("<svg class=", '<svg xml:space="preserve" class=', 1)
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png)], input=text.encode(), check=True)
        return png
    try:
        import cairosvg
    except ImportError:
        return None
    cairosvg.svg2png(bytestring=text.encode(), write_to=str(png))
    return png


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--no-png", action="store_true", help="SVG only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    Shot = tuple[str, tuple[int, int], tuple[str, ...], float | None, Callable[[], ModalScreen[Any]] | None]
    shots: list[Shot] = [(name, size, keys, until, None) for name, size, keys, until in VIEWS]
    shots += [(name, size, (), None, screen) for name, size, screen in DIALOG_SHOTS]
    for name, size, keys, until, screen in shots:
        svg = asyncio.run(shoot(name, size, keys, until, args.out, screen))
        png = None if args.no_png else to_png(svg)
        print(f"{svg}" + (f"  {png.name}" if png else "  (no PNG converter: apt-get install librsvg2-bin)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
