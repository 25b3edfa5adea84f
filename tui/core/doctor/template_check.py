"""The doctor's chat-template check: does the served template render the agent's tool schemas?"""

from __future__ import annotations

from tui.core.doctor.model import CheckResult, DoctorFacts
from tui.core.records import RequestRecord

TEMPLATE_DROPS_TOOLS = (
    "the chat template drops tool schemas (/props chat_template_caps.supports_tools = false): the model "
    "never sees the agent's tools, so tool calling cannot work"
)
TEMPLATE_FIX = (
    "use a tool-capable template (llama-server --chat-template-file FILE, e.g. a ChatML template with "
    "tools) or a model whose own template supports tools"
)


def check_template(facts: DoctorFacts) -> CheckResult:
    """Fail when the running server's chat template cannot render tools; skipped when unknown."""
    server = facts.server
    if facts.mode != "running" or server is None:
        return CheckResult("template", "skip", "skipped: no running server to ask (/props)")
    if server.template_tools is None:
        return CheckResult(
            "template", "skip", "skipped: this llama-server does not report chat_template_caps in /props"
        )
    if not server.template_tools:
        return CheckResult("template", "fail", TEMPLATE_DROPS_TOOLS, TEMPLATE_FIX)
    return CheckResult("template", "pass", "the chat template renders tool schemas (supports_tools)")


def dropped_tools_banner(template_tools: bool | None, record: RequestRecord | None) -> str:
    """The dashboard's red line when the shown request sent tools the template drops ("" otherwise)."""
    if record is None or record.anatomy is None:
        return ""
    anatomy = record.anatomy
    if template_tools is not False and not anatomy.dropped:
        return ""
    categories = anatomy.as_sent if anatomy.rendered else anatomy.categories  # what the agent sent
    schema_tokens = categories.get("tools", 0) + categories.get("mcp_tools", 0)
    if not schema_tokens:
        return ""
    count = len(anatomy.tools)
    schemas = f"{count} tool schemas" if count else "tool schemas"
    return (
        f"the chat template drops tools: the model never sees this request's {schemas} "
        f"({schema_tokens:,} tokens as sent); tool calling cannot work: use --chat-template-file "
        "with a tool-capable template, or another model"
    )
