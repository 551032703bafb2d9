"""Nothing heavy at import: `import mmbench`, `mmbench --help`, `models list` load no torch."""
import subprocess
import sys

import pytest

CHECK = """
import sys
{stmt}
heavy = sorted(m for m in ('torch', 'transformers', 'ranx', 'recbole', 'mmbench_baselines', 'numba') if m in sys.modules)
print('HEAVY=' + ','.join(heavy))
"""


@pytest.mark.parametrize("stmt", [
    "import mmbench, mmbench.cli, mmbench.registry, mmbench.errors",
    "from mmbench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from mmbench.cli import main\ntry:\n    main(['models', 'list'])\nexcept SystemExit:\n    pass",
    "from mmbench.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass",
])
def test_no_heavy_imports(stmt):
    out = subprocess.run([sys.executable, "-c", CHECK.format(stmt=stmt)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    marker = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY=")]
    assert marker == ["HEAVY="], f"heavy modules imported: {marker}"
