"""Write the public names and signatures of TensorRT's Python bindings, one per line.

How tests/trt_api/tensorrt-<version>.txt were made (no GPU, no TensorRT libraries needed):

    pip download tensorrt-cu12-bindings==10.7.0 --no-deps --python-version 3.11 \
        --only-binary=:all: --platform manylinux_2_17_x86_64 -d /tmp/trt
    cd /tmp/trt && unzip -q -d bindings *.whl
    # the bindings link to 9 entry points of libnvinfer/libnvonnxparser/libnvinfer_plugin; no-op
    # stubs of them (stubs.c below) let the pybind11 module import, which is all reading it needs
    for lib in nvinfer nvonnxparser nvinfer_plugin; do
        gcc -shared -fPIC -o lib$lib.so.10 -Wl,-soname,lib$lib.so.10 stubs.c; done
    LD_LIBRARY_PATH=. PYTHONPATH=bindings python tests/trt_api/extract.py > tests/trt_api/tensorrt-10.7.0.txt

TensorRT 11 the same way from ``tensorrt-cu13-bindings==11.4.0.106`` (``--platform manylinux_2_28_x86_64``):
its module has the same layout and links to the same 9 entry points, of ``lib*.so.11``.

stubs.c defines createInferBuilder_INTERNAL, createInferRefitter_INTERNAL, createInferRuntime_INTERNAL,
createNvOnnxParserRefitter_INTERNAL, createNvOnnxParser_INTERNAL, getBuilderPluginRegistry,
getNvOnnxParserVersion, getPluginRegistry and initLibNvInferPlugins, each returning 0 (1 for the last).
Only the list is kept in the repository, not the wheel.

Line formats (names sorted):
    version 10.7.0
    enum    MemoryPoolType: WORKSPACE=0 DLA_MANAGED_SRAM=1 ...   (members and their int() values)
    class   Logger(ILogger)
    method  IExecutionContext.set_tensor_address(name, memory) -> bool
    property IBuilderConfig.progress_monitor rw
    function init_libnvinfer_plugins(logger, namespace) -> bool
The parameters of a method are its pybind11 keyword names (``self`` dropped); ``=`` marks a default;
``(...)`` means no signature (a class without a constructor).  Overloads with the same names appear once.
"""

from __future__ import annotations

import importlib
import re
import sys

SKIP = {"__class__", "__doc__", "__module__", "__dict__", "__weakref__"}


def split_params(text: str) -> list[str]:
    """Top-level comma split of 'a: X, b: Y[Z, W] = 0'."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts]


def signatures(name: str, doc: str | None) -> list[str]:
    """'(a, b=) -> ret' for each overload in a pybind11 docstring."""
    if not doc:
        return ["(...)"]
    found = []
    for m in re.finditer(rf"(?:^|\n)\s*(?:\d+\. )?{re.escape(name)}\((.*?)\) -> ([^\n]+)", doc):
        params = []
        for p in split_params(m.group(1)):
            pname = p.split(":")[0].split("=")[0].strip()
            if pname == "self":
                continue
            params.append(pname + ("=" if "=" in p else ""))
        ret = m.group(2).strip().replace("tensorrt_bindings.tensorrt.", "").replace("tensorrt.tensorrt.", "")
        found.append(f"({', '.join(params)}) -> {ret}")
    return found or ["(...)"]


def is_enum(obj: object) -> bool:
    return isinstance(obj, type) and hasattr(obj, "__members__")


def describe(trt) -> list[str]:
    lines = [f"version {trt.__version__}"]

    def walk(prefix: str, cls: type) -> None:
        if is_enum(cls):
            members = " ".join(f"{name}={int(value)}" for name, value in cls.__members__.items())
            lines.append(f"enum {prefix}: {members}")
            return
        bases = [b.__name__ for b in cls.__bases__ if b.__name__ not in ("object", "pybind11_object")]
        lines.append(f"class {prefix}({', '.join(bases)})")
        for attr, value in sorted(vars(cls).items()):
            if attr in SKIP or (attr.startswith("_") and attr != "__init__"):
                continue
            full = f"{prefix}.{attr}"
            if isinstance(value, property):
                lines.append(f"property {full} {'rw' if value.fset is not None else 'r'}")
            elif isinstance(value, type):
                walk(full, value)
            elif callable(value) or type(value).__name__ in ("instancemethod", "staticmethod"):
                func = value.__func__ if isinstance(value, staticmethod) else value
                for sig in signatures(attr, getattr(func, "__doc__", None)):
                    lines.append(f"method {full}{sig}")
            else:
                lines.append(f"attr {full} {type(value).__name__}")

    for name in sorted(dir(trt)):
        if name.startswith("_"):
            continue
        obj = getattr(trt, name)
        if isinstance(obj, type):
            walk(name, obj)
        elif callable(obj):
            for sig in signatures(name, getattr(obj, "__doc__", None)):
                lines.append(f"function {name}{sig}")
        elif not isinstance(obj, type(sys)):
            lines.append(f"attr {name} {type(obj).__name__}")
    return lines


if __name__ == "__main__":
    module = importlib.import_module(sys.argv[1] if len(sys.argv) > 1 else "tensorrt_bindings")
    print("\n".join(dict.fromkeys(describe(module))))  # dict: drop repeated overloads, keep the order
