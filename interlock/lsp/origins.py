"""A target's effective options, each with where its value comes from.

The values are those of `compiler/policies.py` (the same merge: the target's own option,
else `defaults`', else the language's default); this module adds the origin of each: the
target, `defaults`, a retry policy (named, or written inline in the target or the
defaults), or the built-in default. Works on a project with errors too: a retry policy
that does not resolve is shown as such.
"""

from __future__ import annotations

import attrs

from interlock.compiler import policies
from interlock.dsl import Project, ast

TARGET, DEFAULTS, BUILT_IN = "target", "defaults", "built-in default"


@attrs.frozen
class Value:
    option: str
    value: str
    origin: str


def ms_text(ms: int) -> str:
    """A duration as people write it: `2s`, `1m30s`, `250ms`."""
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0ms"


def _names(names: tuple[ast.Name, ...]) -> str:
    return "[" + ", ".join(n.text for n in names) + "]"


def _own_or_default(own: ast.TargetOptions, defaults: ast.TargetOptions, option: str) -> tuple[object, str] | None:
    value = getattr(own, option)
    if value is not None:
        return value, TARGET
    value = getattr(defaults, option)
    if value is not None:
        return value, DEFAULTS
    return None


def _text(node: object) -> str:
    if isinstance(node, ast.Duration):
        return node.text
    if isinstance(node, (ast.Keyword, ast.Count)):
        return str(node.value)
    if isinstance(node, ast.Name):
        return node.text
    if isinstance(node, ast.Path):
        return node.text
    if isinstance(node, tuple):
        return _names(node)
    return str(node)


def _backoff_text(resolved: policies.Backoff) -> str:
    if resolved.kind == "fixed":
        return f"fixed {ms_text(resolved.initial_ms)}"
    text = (f"linear initial {ms_text(resolved.initial_ms)} step {ms_text(resolved.step_ms)}"
            if resolved.kind == "linear" else
            f"exponential initial {ms_text(resolved.initial_ms)} factor {resolved.factor:g}")
    return text + (f" max {ms_text(resolved.max_ms)}" if resolved.max_ms is not None else "")


def _policy(project: Project, own: ast.TargetOptions, defaults: ast.TargetOptions
            ) -> tuple[list[Value], ast.RetryPolicy | None, str]:
    """The `retry` line, the policy in force, and how to name it as an origin."""
    found = _own_or_default(own, defaults, "retry")
    if found is None:
        return [Value("retry", "none: tried once", BUILT_IN)], None, BUILT_IN
    retry, where = found
    if isinstance(retry, ast.RetryPolicy):
        return [Value("retry", "inline policy", where)], retry, f"{where}'s inline retry"
    assert isinstance(retry, ast.Name)
    policy = project.retries.get(retry.text)
    if policy is None:
        return [Value("retry", f"{retry.text} (not a retry policy of this project)", where)], None, BUILT_IN
    return [Value("retry", retry.text, where)], policy, f"retry policy {retry.text}"


def explain_target(project: Project, decl: ast.TargetDecl) -> list[Value]:
    own = decl.options
    defaults = project.defaults.options if project.defaults else ast.TargetOptions()
    values: list[Value] = []

    def plain(option: str, attribute: str, built_in: str) -> None:
        found = _own_or_default(own, defaults, attribute)
        values.append(Value(option, _text(found[0]), found[1]) if found else Value(option, built_in, BUILT_IN))

    plain("mode", "mode", policies.DEFAULT_MODE)
    plain("timeout", "timeout", ms_text(policies.DEFAULT_TIMEOUT_MS))
    plain("concurrency", "concurrency", str(policies.DEFAULT_CONCURRENCY))
    plain("dead_letter", "dead_letter", "none")
    plain("on_exhausted", "on_exhausted", "dead_letter")
    lines, policy, named = _policy(project, own, defaults)
    values += lines
    if policy is None:
        values.append(Value("attempts", str(policies.NO_RETRY_ATTEMPTS) if named == BUILT_IN
                            else str(policies.DEFAULT_ATTEMPTS), BUILT_IN))
    else:
        values.append(Value("attempts", str(policy.attempts.value), named) if policy.attempts
                      else Value("attempts", str(policies.DEFAULT_ATTEMPTS), BUILT_IN))
        values.append(Value("backoff", _backoff_text(policies.resolve_policy(policy).backoff),
                            named if policy.backoff else BUILT_IN))
        values.append(Value("jitter", policy.jitter.value, named) if policy.jitter
                      else Value("jitter", "none", BUILT_IN))
        values.append(Value("deadline", policy.deadline.text, named) if policy.deadline
                      else Value("deadline", "none", BUILT_IN))
    for option, empty in (("retry_on", "every error"), ("give_up_on", "none")):
        found = _own_or_default(own, defaults, option)
        if found is not None:
            values.append(Value(option, _text(found[0]), found[1]))
        elif policy is not None and getattr(policy, option) is not None:
            values.append(Value(option, _names(getattr(policy, option)), named))
        else:
            values.append(Value(option, empty, BUILT_IN))
    if own.order_by is not None:
        values.append(Value("order by", own.order_by.text, TARGET))
    if own.emits is not None:
        values.append(Value("emits", _names(own.emits), TARGET))
    if own.http is not None:
        url = own.http.url
        shown = f'env("{url.name}")' if isinstance(url, ast.EnvRef) else str(url.value)
        values.append(Value("http", f"{own.http.method.value} {shown}", TARGET))
    return values
