"""pyrt: a small OCI container runtime. Python plans, the kernel executes."""

__version__ = "0.1.0"
#: The OCI runtime-spec version pyrt implements (`pyrt spec` writes it, `features` reports it).
SPEC_VERSION = "1.2.0"
