"""One Server protocol: the throwaway cluster and an existing server share their database methods and nothing else borrowed."""

from __future__ import annotations

import ast
import subprocess
import sys

from pggit_chaos import paths, server
from pggit_chaos.server import base

SERVER_ROOM = paths.PACKAGE / "server"
SHARED = ("connect", "major", "create_database", "drop_database", "next_database_name", "create_role", "drop_role",
          "terminate_backends", "setting")


def test_both_servers_are_a_server_with_the_database_methods_written_once():
    for kind in (server.Cluster, server.ExistingServer):
        assert issubclass(kind, server.Server)
        assert not kind.__abstractmethods__, f"{kind.__name__} leaves {set(kind.__abstractmethods__)} unimplemented"
        for name in SHARED:
            assert getattr(kind, name) is getattr(server.Server, name), f"{kind.__name__}.{name} is its own copy"
    assert server.Cluster.can_control and not server.ExistingServer.can_control


def test_the_server_room_does_not_need_pytest():
    """The plugin turns ServerNotControllable into a skip; the room itself runs anywhere."""
    imports = subprocess.run(
        [sys.executable, "-c", "import sys, pggit_chaos.server; print('pytest' in sys.modules)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert imports == "False"


def test_imports_point_one_way_from_base():
    """base imports no other server module; every other module may import base."""
    tree = ast.parse((SERVER_ROOM / "base.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in imported if m.startswith("pggit_chaos.server")}
    assert base.Server is server.Server


def test_every_server_module_says_what_it_is_and_stays_small():
    for module in sorted(SERVER_ROOM.glob("*.py")):
        text = module.read_text()
        docstring = ast.get_docstring(ast.parse(text))
        assert docstring and docstring.splitlines()[0].strip(), f"{module.name} has no one-line docstring"
        assert len(text.splitlines()) <= 400, f"{module.name} has {len(text.splitlines())} lines"
