"""Pack the champion into the BentoML model store and, optionally, build the Bento: ``python -m serving.package``.

Both go to ``BENTOML_HOME`` as ``engage serve`` sets it (default ``work/bentoml`` in the project, never the home
folder), so ``BENTOML_HOME=work/bentoml bentoml serve engage:latest`` finds them. The Bento is built from
``serving/bentofile.yaml`` (what it carries and how its container listens are described there).

Exit statuses as the CLI's: 0 done, 2 a missing ``mlflow.yaml``, 3 no champion to pack, 1 ``bentoml build`` failed.
The build runs in this process and never installs ``uv`` (see :func:`build_bento`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from serving.server import PROJECT_ROOT, server_env

BENTOFILE = PROJECT_ROOT / "serving" / "bentofile.yaml"


def build_bento() -> str:
    """``bentoml build`` of ``serving/bentofile.yaml`` from the project root, in this process; returns the Bento's tag.

    BentoML 1.4 looks for ``uv`` while writing the Bento's requirements even when it will not lock them
    (``lock_packages: false``) and installs it into the environment when it is missing; here that look-up returns a
    command that fails if it is ever run, so a build that does not lock installs nothing.
    """
    from bentoml._internal import configuration

    configuration.get_uv_command = _no_uv  # read by the builder when it runs, not at import
    import bentoml

    bento = bentoml.bentos.build_bentofile(str(BENTOFILE), build_ctx=str(PROJECT_ROOT))
    return str(bento.tag)


def _no_uv() -> list[str]:
    return [sys.executable, "-c", "raise SystemExit('uv is not used: serving/bentofile.yaml does not lock packages')"]


def main(argv: Sequence[str] | None = None) -> int:
    """Pack (and with ``--build`` build); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m serving.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mlflow.yaml", help="mlflow.yaml naming the registry and the champion")
    parser.add_argument("--build", action="store_true", help="then build the Bento (bentoml build)")
    args = parser.parse_args(argv)
    env = server_env()
    os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]  # before bentoml is imported: its store lives there
    os.makedirs(env["BENTOML_HOME"], exist_ok=True)
    from features.contract.errors import ModelNotFoundError
    from serving.loading import package_champion

    try:
        tag = package_champion(args.config)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModelNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"packed the champion as BentoML model {tag} in {env['BENTOML_HOME']}")
    if not args.build:
        return 0
    try:
        bento = build_bento()
    except Exception as exc:  # BentoML's own errors: one line, exit 1
        print(f"error: bentoml build failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"built Bento {bento} in {env['BENTOML_HOME']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
