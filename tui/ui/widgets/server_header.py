"""The top line: server state, model, slots × n_ctx, n_ctx_train, proxy address, counter."""

from __future__ import annotations

from urllib.parse import urlsplit

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui.core.feed.updates import FeedInfo
from tui.core.logs.state import ServerFacts
from tui.core.poll.kv_sharing import kv_sharing
from tui.core.poll.snapshots import ServerSnapshot
from tui.ui.format import flow, grouped

# Router-mode model states -> the header's component class for them.
MODEL_STATE_STYLES = {
    "loaded": "server-header--up",
    "loading": "server-header--loading",
    "sleeping": "server-header--sleeping",
    "failed": "server-header--down",
}
STATE_HINTS = {
    "down": "start llama-server or set [server] url",
    "loading": "loading the model",
    "sleeping": "sleeping: the next request wakes it",
}


class ServerHeader(Widget):
    """What is running and where: one or two lines depending on the width."""

    COMPONENT_CLASSES = {
        "server-header--up",
        "server-header--loading",
        "server-header--sleeping",
        "server-header--down",
        "server-header--dim",
    }

    DEFAULT_CSS = """
    ServerHeader { height: auto; }
    """

    def __init__(self, info: FeedInfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info = info
        self.server: ServerSnapshot | None = None
        self.facts = ServerFacts()
        self.counter = ""
        self.action = ""  # a running restart's step ("restart: loading"); empty when none
        self.journal = ""  # the proxy's journal problem (rows not journaled...); empty when none
        self.link = ""  # --connect: "disconnected, retrying in 3s"; empty while connected
        self._shown_key: object = None

    def show(
        self,
        server: ServerSnapshot | None = None,
        facts: ServerFacts | None = None,
        counter: str | None = None,
        action: str | None = None,
        journal: str | None = None,
        link: str | None = None,
        info: FeedInfo | None = None,
    ) -> None:
        """Replace what is shown with the given parts (None keeps the current one)."""
        if server is not None:
            self.server = server
        if facts is not None:
            self.facts = facts
        if counter is not None:
            self.counter = counter
        if action is not None:
            self.action = action
        if journal is not None:
            self.journal = journal
        if link is not None:
            self.link = link
        if info is not None:
            self.info = info
        key = (
            _server_key(self.server),
            self.facts,
            self.counter,
            self.action,
            self.journal,
            self.link,
            self.info,
        )
        if key != self._shown_key:
            self._shown_key = key
            self.refresh(layout=True)

    def _models_entry(self, server: ServerSnapshot, dim: Style) -> Text:
        """Router mode: each model with its state (and slots × n_ctx once loaded)."""
        entry = Text.assemble(("models ", dim))
        for index, model in enumerate(server.models):
            if index:
                entry.append(" · ", style=dim)
            component = MODEL_STATE_STYLES.get(model.status, "server-header--dim")
            entry.append(_short_model(model.id), style="bold" if model.id == server.model else "")
            entry.append(f" {model.status}", style=self.get_component_rich_style(component, partial=True))
            if model.n_slots and model.n_ctx_slot:
                entry.append(f" {model.n_slots}×{grouped(model.n_ctx_slot)}", style=dim)
        return entry

    def render(self) -> Text:
        """Entries flowed to the width."""
        server = self.server
        dim = self.get_component_rich_style("server-header--dim", partial=True)
        state = server.state if server else "down"
        state_style = self.get_component_rich_style(f"server-header--{state}", partial=True)
        entries: list[Text] = []
        label = "waiting" if server is None else state
        entries.append(Text.assemble(("● ", state_style), (label, state_style)))
        model = (server.model if server else "") or "no model"
        entries.append(Text(_short_model(model)))
        n_slots = (server.n_slots if server and server.n_slots else None) or self.facts.n_slots
        n_ctx = (server.n_ctx_slot if server and server.n_ctx_slot else None) or self.facts.n_ctx_slot
        if n_slots and n_ctx:
            # "shared": one unified pool all slots draw from; "each": a fixed part per slot (server's word).
            sharing = kv_sharing(self.facts, server).short
            shared = (f" {sharing}" if sharing else "", dim)
            entries.append(Text.assemble(f"{n_slots}×{grouped(n_ctx)}", (" ctx", dim), shared))
        if server is not None and server.models:
            entries.append(self._models_entry(server, dim))
        train = (server.n_ctx_train if server else None) or self.facts.n_ctx_train
        if train:
            entries.append(Text.assemble(("train ", dim), grouped(train)))
        proxy = self.info.proxy_address
        if self.info.mode == "attach":
            entries.append(Text.assemble(("attached ", dim), proxy or "journal"))
        elif self.info.mode == "demo":
            entries.append(Text.assemble(("demo ", dim), "replay"))
        elif self.info.mode == "remote":
            entries += _remote_entries(self.info, dim)
        elif proxy:
            entries.append(Text.assemble(("proxy ", dim), proxy))
        if self.counter:
            entries.append(Text.assemble(("counter ", dim), self.counter))
        if self.action:
            entries.append(Text(self.action, style=self.get_component_rich_style("server-header--loading")))
        if self.journal:
            entries.append(Text(self.journal, style=self.get_component_rich_style("server-header--down")))
        if self.link:
            entries.append(Text(self.link, style=self.get_component_rich_style("server-header--down")))
        if server is not None and server.state != "up":
            hint = server.error or STATE_HINTS.get(server.state, "")
            if hint:
                entries.append(Text(hint, style=state_style))
        return flow(entries, max(10, self.size.width))


def _remote_entries(info: FeedInfo, dim: Style) -> list[Text]:
    """Where a --connect dashboard's data comes from: the serve address, the server and proxy there."""
    host = f" ({info.remote_host})" if info.remote_host and info.remote_host not in info.remote else ""
    entries = [Text.assemble(("remote ", dim), info.remote + host)]
    server = urlsplit(info.server_url).netloc if "//" in info.server_url else info.server_url
    if server:
        entries.append(Text.assemble(("llama-server ", dim), server, (" on that host", dim)))
    if info.proxy_address:
        entries.append(Text.assemble(("proxy ", dim), info.proxy_address))
    return entries


def _server_key(server: ServerSnapshot | None) -> object:
    if server is None:
        return None
    models = tuple((m.id, m.status, m.n_slots, m.n_ctx_slot) for m in server.models)
    sizes = (server.n_slots, server.n_ctx_slot, server.n_ctx_train)
    return (server.state, server.model, sizes, server.error, models)


def _short_model(model: str) -> str:
    name = model.rsplit("/", 1)[-1]
    return name if len(name) <= 32 else name[:31] + "…"
