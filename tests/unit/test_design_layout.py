"""docs/design.md's code layout names every module, each under its own room."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def layout_rooms() -> dict[str, str]:
    """The layout block's text under each ``dct/<room>/`` heading (and ``""`` for the rest)."""
    text = (REPO / "docs" / "design.md").read_text()
    block = re.search(r"## Code layout\n.*?```\n(.*?)```", text, flags=re.S).group(1)
    rooms: dict[str, str] = {"": ""}
    room = ""
    for line in block.splitlines():
        heading = re.match(r"(dct/\w+/)\s", line)
        if heading:
            room = heading.group(1)
            rooms[room] = ""
        elif not line.startswith(" "):
            room = ""
        rooms[room] += line + "\n"
    return rooms


def test_every_module_is_in_the_layout_under_its_room():
    rooms = layout_rooms()
    missing = []
    for path in sorted([*REPO.glob("dct/**/*.py"), *REPO.glob("models/*.py")]):
        if path.name == "__init__.py":
            continue
        relative = path.relative_to(REPO).as_posix()
        room, _, name = relative.rpartition("/")
        if room.startswith("dct/") and room != "dct":
            found = re.search(rf"\b{re.escape(name)}\b", rooms.get(room + "/", ""))
        else:
            found = re.search(rf"(?m)^{re.escape(relative)}\s", rooms[""])
        if not found:
            missing.append(relative)
    assert not missing, f"docs/design.md's code layout does not name {missing}"


def test_the_check_finds_a_missing_module():
    rooms = layout_rooms()
    assert "hard_threshold.py" in rooms["dct/compression/"]
    assert "hard_threshold.py" not in rooms["dct/comm/"]
