"""``patch()`` for TOOLS: the loop guard in CrewAI's tool-call hooks, its
escalation and the per-kickoff LLM budget in CrewAI's before-LLM-call hook, and
a faster ``check_repeated_tool_call`` wherever CrewAI binds that name."""

from __future__ import annotations

import functools
import sys
from typing import Any

from .._patcher import Patcher
from . import _config
from ._executor import RustToolExecutor
from ._repeated import make_check_repeated_tool_call

AGENT_UTILS = "crewai.utilities.agent_utils"
#: Modules known to import ``check_repeated_tool_call`` by name in CrewAI 1.15.
KNOWN_IMPORTERS = ("crewai.agents.agent_executor", "crewai.agents.step_executor")

_active: RustToolExecutor | None = None


def active_executor() -> RustToolExecutor | None:
    """The executor ``patch()`` installed, to read its counters and refusals."""
    return _active


def _install_hooks(patcher: Patcher, executor: RustToolExecutor, *, tool_hooks: bool = True, llm_hook: bool = True) -> None:
    hooks = patcher.resolve("crewai.hooks")
    if hooks is None:
        return
    pairs: list[tuple[str, str, Any]] = []
    if tool_hooks:
        pairs += [
            ("register_before_tool_call_hook", "unregister_before_tool_call_hook", executor.before_hook),
            ("register_after_tool_call_hook", "unregister_after_tool_call_hook", executor.after_hook),
        ]
    if llm_hook:
        # Escalation and the budget act before an LLM call; CrewAI skips after-LLM hooks
        # for tool-call answers, so an after hook could not see the case that matters.
        pairs.append(("register_before_llm_call_hook", "unregister_before_llm_call_hook", executor.before_llm_hook))
    for register_name, unregister_name, hook in pairs:
        register = getattr(hooks, register_name, None)
        unregister = getattr(hooks, unregister_name, None)
        if register is None or unregister is None:
            patcher.report_missing(f"crewai.hooks:{register_name}", "not in this CrewAI version")
            continue
        register(hook)
        patcher.add_undo(f"crewai.hooks:{register_name}", functools.partial(unregister, hook))


def _replace_repeated_check(patcher: Patcher) -> None:
    agent_utils = patcher.resolve(AGENT_UTILS)
    if agent_utils is None:
        return
    original = getattr(agent_utils, "check_repeated_tool_call", None)
    if original is None:
        patcher.report_missing(f"{AGENT_UTILS}:check_repeated_tool_call", "not in this CrewAI version")
        return
    # Import the known importers first, so they bind the original (restored on unpatch).
    for name in KNOWN_IMPORTERS:
        module = patcher.resolve(name)
        if module is not None and getattr(module, "check_repeated_tool_call", None) is not original:
            patcher.report_missing(f"{name}:check_repeated_tool_call", "module does not bind CrewAI's function")
    fast = make_check_repeated_tool_call(agent_utils)
    patcher.replace(AGENT_UTILS, "check_repeated_tool_call", fast)
    # Every loaded module that bound the original by name, known or not.
    for name, module in sorted(sys.modules.items()):
        if module is None or module is agent_utils or not name.startswith("crewai"):
            continue
        if vars(module).get("check_repeated_tool_call") is original:
            patcher.replace(name, "check_repeated_tool_call", fast)


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    """Install the guard and the faster repeated-call check; returns the implementation used."""
    global _active
    settings = _config.resolve(options)
    executor = RustToolExecutor(**settings.executor_kwargs())
    if settings.guard or settings.has_budget:
        llm_hook = settings.has_budget or (settings.guard and settings.max_refusals > 0)
        _install_hooks(patcher, executor, tool_hooks=settings.guard, llm_hook=llm_hook)
    if settings.replace_repeated_check:
        _replace_repeated_check(patcher)
    _active = executor
    return executor.implementation


def stats() -> dict[str, Any] | None:
    """What ``crewai_rust.status()`` shows for TOOLS: the active executor's :meth:`~RustToolExecutor.stats`."""
    return _active.stats() if _active is not None else None


def deactivate() -> None:
    global _active
    _active = None
