"""docs/architecture.md matches the code: every module and function it names exists (issue 23)."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
NAMED = re.compile(r"`((?:services|shared|contract)/[\w/]+\.py)`(?:\s+`([A-Za-z_][\w.]*)`)?")
# One signature's path (sections 1 to 3) crosses at most this many production files (issue 23).
PATH_FILES_CEILING = 20


def named() -> list[tuple[str, str | None]]:
    text = DOC.read_text()
    path = text.split("## 4. Around the path")[0]
    return [(m.group(1), m.group(2)) for m in NAMED.finditer(path)], NAMED.findall(text)


def test_every_named_module_and_function_exists():
    _, everything = named()
    assert len(everything) >= 30
    for file, name in everything:
        assert (ROOT / file).is_file(), f"{file} named in docs/architecture.md does not exist"
        module = importlib.import_module(file[:-3].replace("/", "."))
        if name:
            target = module
            for part in name.split("."):
                assert hasattr(target, part), f"{file} has no {name} (docs/architecture.md)"
                target = getattr(target, part)


def test_the_path_crosses_no_more_files_than_the_ceiling():
    on_path, _ = named()
    files = {file for file, _ in on_path}
    assert 15 <= len(files) <= PATH_FILES_CEILING, sorted(files)
