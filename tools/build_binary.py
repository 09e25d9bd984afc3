"""Build `dist/actorflow`: Actorflow and its own Python in one executable file (PyInstaller).

    python3 -m pip install -e '.[build]' && python3 tools/build_binary.py

Holds the server, every block type, the console and the Swagger UI it
serves, and the child source that code blocks run; code blocks run on the
binary's own interpreter (see tools/actorflow_binary.py).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("server", "actors", "models", "schemas")
# Files read at run time next to the modules, as (source, directory in the bundle).
# Optional imports of installed packages that Actorflow never uses (rich's IPython
# support, openai's numpy/pandas helpers, test and dev tools): left out for size.
EXCLUDE = ("IPython", "jedi", "parso", "prompt_toolkit", "numpy", "pandas", "botocore", "boto3",
           "tkinter", "_tkinter", "matplotlib", "PIL", "pytest", "_pytest", "selenium", "schemathesis",
           "hypothesis", "setuptools", "pkg_resources", "pip", "yaml", "cryptography", "psycopg2",
           "docutils", "pygments.lexers.jvm", "sqlalchemy", "lxml", "scipy", "sounddevice")
DATA = [("server/console", "server/console"), ("server/static", "server/static"),
        ("actors/sandbox_child.py", "actors")]


def main(argv=None):
    import PyInstaller.__main__
    os.chdir(ROOT)
    # This checkout's packages, not another install's (PyInstaller imports them in subprocesses too).
    sys.path.insert(0, ROOT)
    os.environ["PYTHONPATH"] = ROOT
    args = ["tools/actorflow_binary.py", "--onefile", "--name", "actorflow", "--noconfirm", "--clean",
            "--distpath", "dist", "--workpath", "build/pyinstaller", "--specpath", "build/pyinstaller",
            "--paths", ROOT, "--log-level", "WARN"]
    for package in PACKAGES:
        args += ["--collect-submodules", package]
    # Imported by name at run time (drivers, data), not seen by the import scan.
    for package in ("tzdata", "cronsim"):
        args += ["--collect-all", package]
    for module in EXCLUDE:
        args += ["--exclude-module", module]
    for src, dest in DATA:
        args += ["--add-data", f"{os.path.join(ROOT, src)}{os.pathsep}{dest}"]
    PyInstaller.__main__.run(args + list(argv or []))
    path = os.path.join(ROOT, "dist", "actorflow")
    print(f"built {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
