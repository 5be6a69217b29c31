"""Print how to reach the platform that `make lab` deployed (the end of `make lab`).

    python -m nmpi_lab.info          # the public URL, the CA file, a three-line nmpi example
    python -m nmpi_lab.info --json   # the same, for scripts

It reads the deployment (nmpi_lab.deployment) and makes the demo user's token once. The
example uses the public name, which this machine resolves through the lab's DNS once
`python -m nmpi_lab.hostdns on` (the end of `make lab`, as root) has put the lab's DNS server
first in /etc/resolv.conf: the name then follows a failover, and the example keeps working.
"""

from __future__ import annotations

import argparse
import json
import sys

from nmpi_devstack.paths import REPO_ROOT

from nmpi_lab import deployment, hostdns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.info",
        description="How to reach the platform deployed on the local lab by `make lab`.",
        epilog="The public name lives in the lab's DNS server at the witness; this machine "
        "resolves it once `python -m nmpi_lab.hostdns on` has run (make lab does, as root).",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object instead")
    args = parser.parse_args(argv)
    try:
        lab = deployment.load()
    except LookupError as exc:
        print(f"lab-info: {exc}", file=sys.stderr)
        return 1
    lab.demo_token()  # made once each, kept in the generated folder
    lab.admin_token()
    sites = {s: lab.host(s, "web").public_ip for s in ("castor", "jusuf")}
    resolved = lab.resolve()
    token_file = deployment.GENERATED / "demo-token"
    admin_token_file = deployment.GENERATED / "admin-token"
    dns_server = lab.dns_server.public_ip
    # Through the lab's DNS: the same addresses, and no /etc/hosts line that pins them.
    pins = hostdns.pinned(lab.public_name)
    here = not pins and hostdns.host_resolves(lab.public_name, resolved)
    if args.json:
        info = {
            "url": lab.url,
            "job_manager_url": f"{lab.url}/app/",
            "ca_file": str(lab.ca_file),
            "dns_server": lab.dns_server.public_ip,
            "public_name_resolves_to": resolved,
            "host_resolves_public_name": here,
            "sites": sites,
            "demo_user": deployment.DEMO_USER,
            "demo_collab": deployment.DEMO_COLLAB,
            "demo_token_file": str(token_file),
            "admin_user": deployment.ADMIN_USER,
            "admin_token_file": str(admin_token_file),
            "monitoring": {
                "prometheus": lab.prometheus_url,
                "consoles": f"{lab.prometheus_url}/consoles/index.html",
                "alertmanager": lab.alertmanager_url,
                "user": deployment.MONITORING_USER,
                "password_file": str(deployment.MONITORING_PASSWORD_FILE),
            },
        }
        print(json.dumps(info, indent=2))
        return 0
    client = (
        f'c = nmpi.Client(token=open("{token_file}").read().strip(), '
        f'job_service="{lab.url}", user_info_endpoint="{lab.url}/userinfo")'
    )
    example = REPO_ROOT / "platform" / "emulators" / "examples" / "spinnaker_network.py"
    submit = (
        f'job = c.submit_job(source="{example}", platform="SpiNNaker", '
        f'collab_id="{deployment.DEMO_COLLAB}", wait=True)'
    )
    results = 'print(job["status"], c.download_data(job, local_dir="spinnaker-results"))'
    lines = [
        "",
        "The platform is up on the local lab.",
        f"  public URL   {lab.url}   (castor {sites['castor']}, jusuf {sites['jusuf']})",
        f"  CA file      {lab.ca_file}",
        f"  DNS server   {dns_server}   (dig @{dns_server} {lab.public_name})",
        f"  demo token   {token_file}   (user {deployment.DEMO_USER}, "
        f"collab {deployment.DEMO_COLLAB})",
        f"  admin token  {admin_token_file}   (user {deployment.ADMIN_USER}: decides on "
        "resource requests, sets quotas)",
        "",
        *_resolution(lab, dns_server, resolved, here, pins),
        "",
        f"The Job Manager: {lab.url}/app/   (the browser must trust the CA file above;",
        f"  sign in with the demo token: the contents of {token_file})",
        "",
        "Run a PyNN job on the emulated SpiNNaker with the nmpi client (a balanced network,",
        "1 s of real time; its spikes with neo and a raster plot come back from the hardware",
        "site): start .venv/bin/python and type",
        "import os, nmpi; "
        f'os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = "{lab.ca_file}"',
        client,
        submit,
        results,
        "",
        "Metrics, dashboards and alerts at the witness (user "
        f"{deployment.MONITORING_USER}, password in {deployment.MONITORING_PASSWORD_FILE};",
        "the browser must trust the CA file above):",
        f"  dashboards   {lab.prometheus_url}/consoles/index.html",
        f"  alerts       {lab.prometheus_url}/classic/alerts",
        f"  Alertmanager {lab.alertmanager_url}",
    ]
    print("\n".join(lines))
    return 0


def _resolution(
    lab: deployment.Deployment, dns_server: str, resolved: list[str], here: bool, pins: list[str]
) -> list[str]:
    """How this machine resolves the public name, and what to do when it does not."""
    name = lab.public_name
    block = hostdns.read_block()
    failover = "When castor is lost the name moves to jusuf, and the lines below keep working."
    if here and block is not None and block.server == dns_server:
        return [
            f"This machine resolves {name} through the lab's DNS: /etc/resolv.conf asks",
            f"{dns_server} first (for the lab's zone only: other names go on to the machine's",
            "own nameservers; `make lab-down` removes it, `python -m nmpi_lab.hostdns status`).",
            failover,
        ]
    if here:
        return [f"This machine resolves {name} as the lab's DNS ({dns_server}) does.", failover]
    lines = []
    if pins:
        lines.append(
            f"{hostdns.HOSTS_FILE} pins {name} (it wins over DNS: a failover would not move "
            "it); remove:"
        )
        lines += [f"  {pin}" for pin in pins]
    if block is None or block.server != dns_server or not block.first:
        lines += [
            f"This machine does not resolve {name} through the lab's DNS yet: let it ask the",
            "lab's DNS first for the lab's zone (other names go on to its own nameservers;",
            "`make lab-down` undoes it):",
            "  " + hostdns.sudo_command("on", server=dns_server, zone=lab.zone, name=name),
        ]
    elif not pins:
        found = ", ".join(hostdns.host_addresses(name)) or "nothing"
        lines.append(
            f"/etc/resolv.conf asks the lab's DNS ({dns_server}) first, yet this machine "
            f"resolves {name} to {found}, the lab's DNS to {', '.join(resolved) or 'nothing'} "
            "(python -m nmpi_lab.hostdns status)."
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
