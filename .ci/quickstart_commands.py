"""Print the commands of README.md's Quick start, one per line: the one-line ```bash blocks
under the "## Quick start" heading, in order (CI runs exactly these)."""

import re
import sys
from pathlib import Path

text = Path(sys.argv[1]).read_text()
section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
    lines = [line for line in block.splitlines() if line.strip()]
    if len(lines) != 1:
        sys.exit(f"README.md: a Quick start block must be one command, found {len(lines)} lines")
    print(lines[0])
