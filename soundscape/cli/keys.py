"""Commands: ``keys init`` (a development CA and C2PA signing certificate) and ``keys show``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundscape.cli.common import console, workspace
# Library services are imported inside each command: `soundscape --help` loads none of them.

keys_app = typer.Typer(help="Content-credential (C2PA) signing keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def init(
    organization: Annotated[Optional[str], typer.Option(
        "--organization", "--org",
        help="Studio named in the certificates' Organization. Default: the 'studio' setting.")] = None,
    algorithm: Annotated[str, typer.Option(help="Key algorithm: es256 (ECDSA P-256) or ed25519.")] = "es256",
    force: Annotated[bool, typer.Option("--force", help="Replace existing development keys.")] = False,
) -> None:
    """Make a development CA and a C2PA signing certificate in the workspace's keys folder.

    For local use and tests: files signed with it are trusted only where this CA is a trust
    anchor. A studio configures its own CA-issued certificate instead (see `soundscape docs reports`).
    """
    from soundscape.rights import credentials

    ws = workspace()
    org = organization or ws.setting("studio") or credentials.DEV_ORGANIZATION
    keys = credentials.make_dev_ca(credentials.dev_folder(ws), organization=str(org),
                                   algorithm=algorithm, force=force)
    console.print(f"development CA      {keys.ca_cert}", soft_wrap=True)
    console.print(f"signing certificate {keys.signer_cert} ({keys.algorithm}, O={keys.organization})", soft_wrap=True)
    console.print(f"private keys        {keys.ca_key}, {keys.signer_key} (mode 0600)", soft_wrap=True)
    if ws.setting("signing_cert"):
        console.print("note: soundscape.toml names signing_cert, which still wins over these keys", soft_wrap=True)
    else:
        console.print("outputs are now signed with this certificate; the CA is the trust anchor "
                      "unless soundscape.toml names trust_anchors", soft_wrap=True)


@keys_app.command("show")
def show() -> None:
    """Show the signing certificate, trust anchors and training-and-mining choice in use."""
    from soundscape.rights import credentials

    ws = workspace()
    config = credentials.check_signing(ws)
    if config is None:
        console.print("signing: off (no certificate; run 'soundscape keys init' or set "
                      "signing_cert and signing_key in soundscape.toml)", soft_wrap=True)
    else:
        info = credentials.certificate_summary(config.cert_chain.read_bytes())
        alg = credentials.signing_algorithm(config.key.read_bytes())
        console.print(f"signing certificate {config.cert_chain}", soft_wrap=True)
        console.print(f"  subject  {info['subject']}", soft_wrap=True)
        console.print(f"  issuer   {info['issuer']}", soft_wrap=True)
        console.print(f"  valid    {info['not_before']} to {info['not_after']}", soft_wrap=True)
        console.print(f"  sha256   {info['sha256']}", soft_wrap=True)
        console.print(f"  key      {config.key} ({alg})", soft_wrap=True)
        console.print(f"timestamp authority {config.tsa_url or 'none'}", soft_wrap=True)
    anchors = credentials.trust_anchors_path(ws)
    console.print(f"trust anchors       {anchors or 'none (nothing verifies as trusted)'}", soft_wrap=True)
    console.print(f"training-and-mining {credentials.training_mining_use(ws)}", soft_wrap=True)
