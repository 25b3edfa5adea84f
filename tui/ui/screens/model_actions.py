"""Router mode's `r`: pick a model to load, unload or restart (or the whole router), then act in a worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from tui.ui import action_messages as am
from tui.ui.screens.dialogs import ConfirmDialog, PickDialog

if TYPE_CHECKING:
    from textual.screen import Screen

    from tui.core.actions.router_control import ModelAction
    from tui.core.poll.snapshots import RouterModel

    Act = Callable[[str, str], ModelAction]  # (action, model name): blocks until the model settles

WHOLE_ROUTER = "router"
# What each action asks before it runs (load frees nothing and stops nothing: it runs at once).
CONFIRM = {
    "unload": "Unload {name}? Its process stops and its KV cache is dropped; the next request for it "
    "loads it again and processes its prompt in full.",
    "restart": "Restart {name}? Its process stops (its KV cache is dropped) and starts again with its "
    "preset read anew.",
}


def model_choices(models: Sequence[RouterModel]) -> list[tuple[str, str]]:
    """(action:model, label) per possible action, then the whole router's restart."""
    choices: list[tuple[str, str]] = []
    for model in models:
        size = f", {model.n_slots}×{model.n_ctx_slot:,}" if model.n_slots and model.n_ctx_slot else ""
        state = f"({model.status}{size})"
        if model.status in ("loaded", "sleeping", "loading"):
            choices.append((f"unload:{model.id}", f"unload {model.id} {state}"))
            choices.append((f"restart:{model.id}", f"restart {model.id} {state}"))
        else:
            choices.append((f"load:{model.id}", f"load {model.id} {state}"))
    choices.append((WHOLE_ROUTER, "restart the whole router (every model)…"))
    return choices


def open_model_actions(
    screen: Screen[None], act: Act, models: Sequence[RouterModel], whole_router: Callable[[], None],
    where: str = "",
) -> None:
    """The pick list; unload and restart ask again (default Cancel) before they run."""

    def picked(value: str | None) -> None:
        if not value:
            return
        if value == WHOLE_ROUTER:
            whole_router()
            return
        action, _, name = value.partition(":")
        run = partial(_start, screen, act, action, name)
        if action not in CONFIRM:
            run()
            return
        body = CONFIRM[action].format(name=name)
        screen.app.push_screen(
            ConfirmDialog(f"{action} model", body, action.capitalize()), lambda ok: run() if ok else None
        )

    note = f"Router mode{where}: each model runs in its own process. Pick one to act on."
    screen.app.push_screen(PickDialog("models", note, model_choices(models)), picked)


def _start(screen: Screen[None], act: Act, action: str, name: str) -> None:
    screen.run_worker(
        partial(_act, screen, act, action, name),
        thread=True, exclusive=True, group="act", exit_on_error=False, description=f"{action} {name}",
    )  # fmt: skip


def _act(screen: Screen[None], act: Act, action: str, name: str) -> None:
    from tui.core.actions.router_control import RouterControlError

    try:
        result = act(action, name)
    except RouterControlError as exc:
        screen.post_message(am.ActionResult(f"{action} model", str(exc), "error"))
        return
    severity = "information" if result.ok else "error"
    screen.post_message(am.ActionResult(f"{action} model", result.describe(), severity))
