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
           "docutils", "pygments.lexers.jvm", "sqlalchemy", "lxml", "scipy", "sounddevice",
           # Optional to tornado's and rich's logging (tried, skipped when missing) and to no one else.
           "curses", "_curses", "readline", "colorama")
DATA = [("server/console", "server/console"), ("server/static", "server/static"),
        ("actors/sandbox_child.py", "actors")]


def tzdata_zip():
    """The time zone database (tzdata) as one zip, imported from there at run time.

    As loose files it is some 600 of the binary's 770, and every start unpacks
    each one; zoneinfo reads the zip through zipimport just as well.
    """
    import tzdata
    import zipfile
    source = os.path.dirname(tzdata.__file__)
    path = os.path.join(ROOT, "build", "pyinstaller", "tzdata.zip")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                zf.write(full, os.path.join("tzdata", os.path.relpath(full, source)))
    return path


def main(argv=None):
    import PyInstaller.__main__
    os.chdir(ROOT)
    # This checkout's packages, not another install's (PyInstaller imports them in subprocesses too).
    sys.path.insert(0, ROOT)
    os.environ["PYTHONPATH"] = ROOT
    args = ["tools/actorflow_binary.py", "--onefile", "--name", "actorflow", "--noconfirm", "--clean",
            "--distpath", "dist", "--workpath", "build/pyinstaller", "--specpath", "build/pyinstaller",
            "--paths", ROOT, "--log-level", "WARN",
            # No debug symbols: the file unpacks itself on every start, so size is start-up time.
            "--strip"]
    for package in PACKAGES:
        args += ["--collect-submodules", package]
    # Imported by name at run time (drivers, data), not seen by the import scan.
    args += ["--collect-all", "cronsim", "--exclude-module", "tzdata",
             "--add-data", f"{tzdata_zip()}{os.pathsep}."]
    for module in EXCLUDE:
        args += ["--exclude-module", module]
    for src, dest in DATA:
        args += ["--add-data", f"{os.path.join(ROOT, src)}{os.pathsep}{dest}"]
    PyInstaller.__main__.run(args + list(argv or []))
    path = os.path.join(ROOT, "dist", "actorflow")
    print(f"built {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
