"""The messages between pyrt and pyrt-init, named once (the diagram: docs/architecture.md, "The
sync protocol"). `python -m pyrt.cheader` writes them into native/init/steps.h as SYNC_* for C.

On the sync socket (SOCK_SEQPACKET: one message per datagram, fields NUL-terminated):
"""

MAPPED = b"mapped"  # parent -> child of clone3 in a new user namespace (native/spawn.c, before it is
#                    pyrt-init): its uid_map and gid_map are written (pyrt/userns.py)
GO = b"go"  # parent -> init: take the plan (the parent holds what it needs of the new process)
STEP = b"step"  # init -> parent: INDEX NS, before each step when the plan starts with `trace`: NS is
#                 when the step starts, in CLOCK_MONOTONIC nanoseconds (pyrt-init's own clock, the
#                 one time.monotonic_ns() reads): `--trace` times the child's steps with it
PID = b"pid"  # init -> parent: PID, the process that goes on after a fork into a joined pid namespace
HOOKS = b"hooks"  # init -> parent: stopped at hook-sync; the parent runs prestart and createRuntime,
#                  then answers with two state JSONs for the init's hooks, "creating" NUL "created":
#                  their length in decimal, then the bytes in datagrams of at most CHUNK bytes
SECCOMP = b"seccomp"  # init -> parent: the seccomp filter's listener fd rides along (SCM_RIGHTS): the
#                      parent sends it to the profile's agent (seccomp.send_listener), then closes it
READY = b"ready"  # init -> parent: set up, credentials applied; next it waits on the exec fifo
ERROR = b"error"  # init -> parent: INDEX ERRNO DETAIL: step INDEX failed (ERRNO 0: DETAIL says it
#                  all; INDEX -1: pyrt-init did not start); the init exits
# A successful execve closes the init's end of the socket (close-on-exec): the parent reads EOF.

CHUNK = 65536  # bytes: a datagram is bounded by the socket's buffer (the states need not be)

#: What `start` writes into the exec fifo (the init is blocked reading it). The init keeps its fifo
#: fd, close-on-exec, until its execve: `start` reads end-of-file once the process runs, or the
#: reason of a failure, which the init writes into the fifo (and onto the container's stderr).
FIFO_START = b"0"

#: Every name above, for the C header.
MESSAGES = {"MAPPED": MAPPED, "GO": GO, "STEP": STEP, "PID": PID, "HOOKS": HOOKS, "SECCOMP": SECCOMP,
            "READY": READY, "ERROR": ERROR, "FIFO_START": FIFO_START}
