"""Targets that can lose events, and dead letters that `on_exhausted drop` makes useless.

Reads every target's effective options (`policies.resolve_targets`: its own, else
`defaults`, else the language's defaults) and reports:

- E0230 an async target with no dead letter (its own or the `defaults` one) and without
  `on_exhausted drop`. Every policy can run out (`attempts` is finite, and a target with no
  policy at all is tried once), and an async delivery has no caller to hand its failure to, so
  such a target loses the events it fails to deliver. Sync targets are exempt: `publish`
  returns their failure to the caller.
- W0231 a dead letter that `on_exhausted drop` leaves unused, on an async target: the policy
  sends nothing to the dead letter itself (no `retry_on`, no `give_up_on`: every error is
  retried), and the dead letter is written at the same level as the `drop` or closer to the
  target. A target that says `on_exhausted drop` itself while `defaults` names a dead letter is
  not reported: its `drop` overrides what it inherits.

Does not judge the policies themselves (`check_retries`), nor whether a dead letter is used
by anything at all.
"""

from __future__ import annotations

from interlock.dsl import Diagnostic, Project, Related, ast
from interlock.dsl.diagnostics import error, warning

from .policies import Target, resolve_targets


def check_loss(project: Project) -> list[Diagnostic]:
    defaults = project.defaults.options if project.defaults else ast.TargetOptions()
    diagnostics: list[Diagnostic] = []
    # a dead letter as written -> the `drop` in force, and the targets for which it is useless
    unused: dict[ast.Name, tuple[ast.Keyword, list[Target]]] = {}
    for target in resolve_targets(project).values():
        own = target.decl.options
        if target.mode == "async" and target.dead_letter is None and target.on_exhausted != "drop":
            diagnostics.append(_can_lose(target, own, defaults))
        drop = own.on_exhausted or defaults.on_exhausted
        dead_letter = own.dead_letter or defaults.dead_letter
        if target.mode != "async" or drop is None or drop.value != "drop" or dead_letter is None:
            continue
        sends_straight = target.policy.retry_on is not None or bool(target.policy.give_up_on)
        if sends_straight or (own.on_exhausted is not None and own.dead_letter is None):
            continue
        unused.setdefault(dead_letter, (drop, []))[1].append(target)
    for dead_letter, (drop, targets) in unused.items():
        diagnostics.append(_unused(dead_letter, drop, targets))
    return diagnostics


def _can_lose(target: Target, own: ast.TargetOptions, defaults: ast.TargetOptions) -> Diagnostic:
    if own.mode is not None:
        how = "async"
    elif defaults.mode is not None:
        how = "async (from `defaults`)"
    else:
        how = "async (the default mode)"
    return error(
        "E0230", f"target `{target.name}` can lose events", target.span, f"{how}, and no dead letter",
        "give it a dead letter (`dead_letter NAME`, or one in `defaults`), "
        "or say `on_exhausted drop` to allow the loss")


def _unused(dead_letter: ast.Name, drop: ast.Keyword, targets: list[Target]) -> Diagnostic:
    names = ", ".join(f"`{t.name}`" for t in targets)
    whose = f"target {names}" if len(targets) == 1 else f"targets {names}"
    return warning(
        "W0231", f"dead letter `{dead_letter.text}` is never used by {whose}: `on_exhausted drop` drops what it "
        "would receive", dead_letter.span, "never used",
        f"remove `dead_letter {dead_letter.text}` to say the loss is intended, or remove `on_exhausted drop` "
        "to keep what retries fail to deliver",
        [Related(drop.span, "exhausted events are dropped here")])
