"""Optional packages: a feature whose package is missing says which extra installs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (package import name blocked, module that needs it, extra named in the error)
CASES = [
    ("gradio", "tools.app.common", "app"),
    ("scipy", "painter.promptable.refine", "app"),
    ("cv2", "seggpt.evaluation.vos_metrics", "video"),
    ("yaml", "seggpt.training.config", "train"),
    ("datasets", "data_mixtures.sources.hf", "train"),
    ("pycocotools", "seggpt.labelling.coco", "label"),
    ("label_studio_sdk", "seggpt.labelling.labelstudio", "label"),
]

SCRIPT = """
import importlib, json, sys
from painter.errors import MissingDependencyError
out = {}
for blocked, module, extra in json.loads(sys.argv[1]):
    saved = {k: v for k, v in sys.modules.items() if k == blocked or k.startswith(blocked + ".")}
    for k in saved:
        del sys.modules[k]
    sys.modules[blocked] = None  # makes "import blocked" raise ImportError
    try:
        importlib.import_module(module)
        out[module] = "imported"
    except MissingDependencyError as err:
        out[module] = str(err)
    finally:
        del sys.modules[blocked]
        sys.modules.update(saved)
        for k in [k for k in sys.modules if k == module]:
            del sys.modules[k]
print(json.dumps(out))
"""


def test_missing_optional_packages_name_their_extra():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(CASES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    messages = json.loads(done.stdout.strip().splitlines()[-1])
    for _, module, extra in CASES:
        assert f"painter-seggpt[{extra}]" in messages[module], (module, messages[module])


def test_core_imports_need_no_optional_package():
    """``import seggpt`` and ``import painter.promptable`` load none of the training, app or
    video packages."""
    code = (
        "import sys, seggpt, painter.promptable; "
        "print([m for m in ('datasets', 'gradio', 'cv2', 'pandas', 'skimage', 'matplotlib') "
        "if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
