"""Stand-in for pypa's get-pip script, for ansible-test where its download host is unreachable.

ansible-test bootstraps pip into each sanity virtual environment by running get-pip from
``~/.ansible/test/cache/get_pip_<version>.py``.  This stand-in does the same job offline: pip from the
interpreter's bundled ensurepip, then the requested pip, trusting the system CA store.
"""

import os
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def main() -> int:
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
    cert = ["--cert", CA_BUNDLE] if os.path.exists(CA_BUNDLE) else []
    return subprocess.run([sys.executable, "-m", "pip", "install", *cert, *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
