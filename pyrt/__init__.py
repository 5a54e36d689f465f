"""pyrt: a small OCI container runtime. Python plans, the kernel executes."""

__version__ = "0.1.0"
#: The OCI runtime-spec version pyrt implements (`pyrt spec` writes it; `state`, `list -f json`
#: and the hooks' state report it, as runc does, whatever the config's `ociVersion`).
SPEC_VERSION = "1.3.0"
