"""What ``judgeloop up`` says before it listens on anything but loopback.

MLflow's basic auth (team mode) sends each password with every request, base64-encoded, which is
not encryption; ``judgeloop up`` serves plain HTTP. Dagster's UI and GraphQL API have no login.
On loopback only this machine's users can reach either; on a network address, anyone on the path.
"""

import ipaddress


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it resolves to a network address as far as we know


def warnings(host: str, team: bool) -> list[str]:
    """One paragraph per risk of listening on ``host`` (none on loopback)."""
    if is_loopback(host):
        return []
    found = []
    if team:
        found.append(
            f"WARNING: --host {host} is not loopback and MLflow serves plain HTTP (no TLS): the reviewers' and the "
            "admin's passwords travel in clear text on the network with every request (basic auth), readable by "
            "anyone on the path. Put a TLS-terminating reverse proxy (https) in front of MLflow and Dagster, or keep "
            "--host 127.0.0.1 and reach them through an SSH tunnel or a VPN."
        )
    else:
        found.append(
            f"WARNING: --host {host} is not loopback and MLflow has no login without --team: anyone who reaches it "
            "can read the traces and write labels."
        )
    found.append(
        f"WARNING: Dagster's UI and GraphQL API on {host} have no login: anyone who reaches them can launch runs. "
        "Put them behind your team's own authentication (a reverse proxy with SSO, a VPN)."
    )
    return found
