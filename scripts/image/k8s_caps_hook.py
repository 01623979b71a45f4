#!/usr/bin/env python3
"""podman "precreate" hook: gives a non-root container the capabilities
Kubernetes would, not podman's.

podman puts `--cap-add` capabilities of a non-root container into the
ambient and inheritable sets too, so every process in it holds them
whether or not its binary carries file capabilities. Kubernetes runtimes
(containerd, CRI-O) set no ambient capabilities: a non-root process has
capabilities only through file capabilities, bounded by the container's
set. That is how the image gives dnsmasq its three, and what
scripts/test-image.sh must prove, so this hook clears the ambient and
inheritable sets of containers whose user is not root. The bounding set
(`--cap-drop`/`--cap-add`) is left as podman made it.

podman runs a precreate hook with the OCI runtime configuration on stdin
and uses what it prints as the new configuration.
"""

import json
import sys

config = json.load(sys.stdin)
process = config.get("process", {})
if process.get("user", {}).get("uid", 0) != 0:
    caps = process.setdefault("capabilities", {})
    caps["ambient"] = []
    caps["inheritable"] = []
json.dump(config, sys.stdout)
