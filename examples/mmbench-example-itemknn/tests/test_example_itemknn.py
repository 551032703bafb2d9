"""The conformance checks of mmbench on this plugin (what CI runs on a submission)."""
import subprocess
import sys


def test_mmbench_check():
    out = subprocess.run([sys.executable, "-m", "mmbench", "check", "example-itemknn"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
