"""vidsr.bytecode: bytecode kept in the engine folder where Python cannot keep it, read back on the
next start, recompiled when the source changes, and packages with their own bytecode untouched.  A
stand-in package plays PyTorch (the real one has its bytecode in this venv)."""

from __future__ import annotations

import importlib.util
import marshal
import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vidsr.bytecode import SWITCH_ENV, bytecode_folder

ROOT = Path(__file__).resolve().parents[1]


def _package(site: Path, name: str, value: int = 1) -> Path:
    """``name/__init__.py`` importing ``name/sub.py``, which holds ``VALUE``."""
    folder = site / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(f"from {name} import sub\n")
    (folder / "sub.py").write_text(f"VALUE = {value}\n")
    return folder


def _run(site: Path, engines: Path, code: str, **env: str) -> str:
    """``code`` in a fresh interpreter that may not write bytecode (as in many container images)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", SWITCH_ENV)}
    environ.update(
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
        PYTHONDONTWRITEBYTECODE="1",
        VIDSR_ENGINE_DIR=str(engines),
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _compiled_package(site: Path, name: str) -> Path:
    """A package whose installer compiled its bytecode beside its sources, as pip does."""
    folder = _package(site, name)
    for source in folder.glob("*.py"):
        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True)
    return folder


KEEP_AND_IMPORT = """
    from vidsr.bytecode import keep_bytecode
    folder = keep_bytecode("standin")
    import standin, otherpkg, compiledpkg
    print(folder, standin.sub.VALUE, otherpkg.sub.VALUE)
"""


def _packages(site: Path, value: int = 1) -> Path:
    """standin (plays PyTorch), otherpkg (also without bytecode), compiledpkg (with its own)."""
    _package(site, "otherpkg")
    _compiled_package(site, "compiledpkg")
    return _package(site, "standin", value)


def _kept(engines: Path) -> list[Path]:
    return sorted((engines / "pycache").rglob("*.pyc"))


def test_kept_read_back_and_recompiled_when_the_source_changes(tmp_path):
    site, engines = tmp_path / "site", tmp_path / "engines"
    package = _packages(site)
    compiled = sorted(site.rglob("*.pyc"))
    folder, value, other = _run(site, engines, KEEP_AND_IMPORT).split()
    assert Path(folder) == engines / "pycache" / sys.implementation.cache_tag
    assert (value, other) == ("1", "1")
    kept = _kept(engines)
    assert sorted((p.parent.name, p.name) for p in kept) == [
        (name, file) for name in ("otherpkg", "standin") for file in ("__init__.pyc", "sub.pyc")
    ]  # compiledpkg's bytecode is Python's business
    assert sorted(site.rglob("*.pyc")) == compiled  # nothing written beside the sources

    # The next start runs the kept bytecode: swap in other code under the same header and see it run.
    sub = next(p for p in kept if p.name == "sub.pyc" and p.parent.name == "standin")
    data = sub.read_bytes()
    sub.write_bytes(data[:16] + marshal.dumps(compile("VALUE = 2\n", str(package / "sub.py"), "exec")))
    assert _run(site, engines, KEEP_AND_IMPORT).split()[1] == "2"

    # An edited source (another size) is compiled afresh and its bytecode replaced.
    (package / "sub.py").write_text("VALUE = 333\n")
    assert _run(site, engines, KEEP_AND_IMPORT).split()[1] == "333"
    assert sub.read_bytes()[:4] == importlib.util.MAGIC_NUMBER


def test_damaged_kept_bytecode_is_compiled_afresh(tmp_path):
    site, engines = tmp_path / "site", tmp_path / "engines"
    _packages(site, value=7)
    _run(site, engines, KEEP_AND_IMPORT)
    for path in _kept(engines):
        path.write_bytes(path.read_bytes()[:20])  # header intact, code truncated
    assert _run(site, engines, KEEP_AND_IMPORT).split()[1] == "7"


def test_switched_off_or_explicit_prefix_leaves_python_alone(tmp_path):
    site, engines = tmp_path / "site", tmp_path / "engines"
    _packages(site)
    assert _run(site, engines, KEEP_AND_IMPORT, **{SWITCH_ENV: "0"}).split()[0] == "None"
    prefix = tmp_path / "prefix"
    assert _run(site, engines, KEEP_AND_IMPORT, PYTHONPYCACHEPREFIX=str(prefix)).split()[0] == "None"
    assert not (engines / "pycache").exists()


def test_where_python_keeps_bytecode_itself_nothing_changes(tmp_path, monkeypatch):
    monkeypatch.delenv(SWITCH_ENV, raising=False)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setenv("VIDSR_ENGINE_DIR", str(tmp_path / "engines"))
    package = _package(tmp_path / "site", "standin_here")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert bytecode_folder("standin_here") is None  # its folder is writable: Python writes it
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert bytecode_folder("standin_here") == tmp_path / "engines" / "pycache" / sys.implementation.cache_tag
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only site-packages
    assert bytecode_folder("standin_here") is not None

    cached = Path(importlib.util.cache_from_source(str(package / "__init__.py")))
    cached.parent.mkdir()
    cached.write_bytes(b"")  # the installer compiled it: Python reads its own
    assert bytecode_folder("standin_here") is None
    assert bytecode_folder("no_such_package_here") is None


@pytest.mark.parametrize("module", ["vidsr.cli.main", "vidsr.bytecode"])
def test_the_cli_can_ask_before_pytorch_is_imported(module):
    """keep_bytecode is useless once PyTorch is in: the CLI's module and this one must not import it."""
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def test_the_clis_child_processes_use_its_folder(tmp_path):
    """A batch worker imports PyTorch while unpickling its task: the folder travels in the environment
    and ``import vidsr``, the first vidsr code such a process runs, puts the finder in place."""
    site, engines = tmp_path / "site", tmp_path / "engines"
    _packages(site)
    folder = engines / "pycache" / "inherited"
    child = """
        import sys
        import vidsr
        from vidsr.bytecode import KeptBytecodeFinder
        print([str(f.folder) for f in sys.meta_path if isinstance(f, KeptBytecodeFinder)])
        import standin, compiledpkg
    """
    assert _run(site, engines, child, VIDSR_BYTECODE_FOLDER=str(folder)) == str([str(folder)])
    assert [p.name for p in sorted((folder / site.relative_to("/") / "standin").rglob("*.pyc"))] == [
        "__init__.pyc",
        "sub.pyc",
    ]
    assert not list(folder.rglob("compiledpkg"))
    # The CLI side: keep_bytecode names its folder for the children.
    parent = """
        import os
        from vidsr.bytecode import keep_bytecode
        print(keep_bytecode("standin") == __import__("pathlib").Path(os.environ["VIDSR_BYTECODE_FOLDER"]))
    """
    assert _run(site, engines, parent) == "True"
