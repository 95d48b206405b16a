"""A session's state is declared on its class: no code outside it invents attributes.

Read from the source: every assignment to ``session.<name>`` or ``connection.<name>``
anywhere in ``gateway/`` must name an attribute ``Session`` declares (in its class
body or its ``__init__``), and no code asks ``getattr(session, "name", default)`` as
if the state might not be there.
"""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.server.session import LoginState, Session

ROOT = Path(__file__).resolve().parents[2] / "gateway"
SESSION_NAMES = {"session", "connection"}


def _declared() -> set[str]:
    names = set(vars(Session))
    tree = ast.parse((ROOT / "server" / "session.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Session":
            for item in ast.walk(node):
                if (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.ctx, ast.Store)
                    and isinstance(item.value, ast.Name)
                    and item.value.id == "self"
                ):
                    names.add(item.attr)
    return names


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    return []


def _flatten(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [leaf for element in target.elts for leaf in _flatten(element)]
    return [target]


def test_session_attributes_are_assigned_only_if_declared() -> None:
    declared = _declared()
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for target in _targets(node):
                for leaf in _flatten(target):
                    if (
                        isinstance(leaf, ast.Attribute)
                        and isinstance(leaf.value, ast.Name)
                        and leaf.value.id in SESSION_NAMES
                        and leaf.attr not in declared
                    ):
                        problems.append(f"{path.relative_to(ROOT.parent)}:{leaf.lineno}: {leaf.value.id}.{leaf.attr}")
    assert not problems, "attributes set on a session that Session does not declare:\n" + "\n".join(problems)


def test_no_guessing_at_session_state() -> None:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in SESSION_NAMES
                and path.name != "conditions.py"  # aioftp's decorators name fields by string
            ):
                problems.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "__dict__"
                and isinstance(node.value, ast.Name)
                and node.value.id in SESSION_NAMES
            ):
                problems.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: __dict__")
    assert not problems, "getattr/setattr on a session instead of its declared state:\n" + "\n".join(problems)


def test_rein_state_is_all_in_login_state() -> None:
    """Everything REIN must forget lives in LoginState, which REIN replaces whole."""
    fields = set(LoginState.__dataclass_fields__)
    for name in ("user", "logged", "login_name", "current_directory", "transfer_type",
                 "restart_offset", "rename_from", "rename_from_virtual", "encoding",
                 "utf8_forced", "mlst_facts", "virtual_host", "throttles", "path_io"):
        assert name in fields, name
