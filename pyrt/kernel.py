"""The kernel's numbers a plan carries, named once: mount(2) flags and the option words that set
them, mount_setattr(2) attributes, clone(2) namespace flags, setrlimit(2) resources.

Pure data with no imports: the step builders read it to make plans and pyrt/steps.py reads it to
describe them, so neither imports the other to spell a number.
"""

# mount(2) flags (<sys/mount.h>)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 0x10, 0x20, 0x40, 0x80
MS_NOSYMFOLLOW, MS_NOATIME, MS_NODIRATIME, MS_BIND = 0x100, 0x400, 0x800, 0x1000
MS_REC, MS_SILENT, MS_POSIXACL = 0x4000, 0x8000, 0x10000
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 0x20000, 0x40000, 0x80000, 0x100000
MS_RELATIME, MS_I_VERSION, MS_STRICTATIME, MS_LAZYTIME = 0x200000, 0x800000, 0x1000000, 0x2000000

# mount_setattr(2) attributes, for the recursive "r"-prefixed options
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV, ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
ATTR_RELATIME, ATTR_NOATIME, ATTR_STRICTATIME, ATTR_NODIRATIME = 0x0, 0x10, 0x20, 0x80
ATTR_NOSYMFOLLOW = 0x200000
ATTR__ATIME = 0x70

#: mount option -> (flags to set, flags to clear): exactly the words runc accepts
FLAGS = {
    "defaults": (0, 0), "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID), "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC), "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0), "remount": (MS_REMOUNT, 0),
    "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK), "atime": (0, MS_NOATIME),
    "noatime": (MS_NOATIME, 0), "diratime": (0, MS_NODIRATIME), "nodiratime": (MS_NODIRATIME, 0),
    "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "lazytime": (MS_LAZYTIME, 0), "nolazytime": (0, MS_LAZYTIME), "iversion": (MS_I_VERSION, 0),
    "noiversion": (0, MS_I_VERSION), "acl": (MS_POSIXACL, 0), "noacl": (0, MS_POSIXACL),
    "silent": (MS_SILENT, 0), "loud": (0, MS_SILENT), "nosymfollow": (MS_NOSYMFOLLOW, 0),
    "symfollow": (0, MS_NOSYMFOLLOW), "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
}

PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

#: recursive option -> (attributes to set, attributes to clear)
RECURSIVE = {
    "rro": (ATTR_RDONLY, 0), "rrw": (0, ATTR_RDONLY), "rnosuid": (ATTR_NOSUID, 0),
    "rsuid": (0, ATTR_NOSUID), "rnodev": (ATTR_NODEV, 0), "rdev": (0, ATTR_NODEV),
    "rnoexec": (ATTR_NOEXEC, 0), "rexec": (0, ATTR_NOEXEC), "rnodiratime": (ATTR_NODIRATIME, 0),
    "rdiratime": (0, ATTR_NODIRATIME), "rnosymfollow": (ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, ATTR_NOSYMFOLLOW), "rrelatime": (ATTR_RELATIME, ATTR__ATIME),
    "rnorelatime": (0, 0), "rnoatime": (ATTR_NOATIME, ATTR__ATIME), "ratime": (0, ATTR__ATIME),
    "rstrictatime": (ATTR_STRICTATIME, ATTR__ATIME), "rnostrictatime": (0, 0),
}

#: config.json's namespace types -> CLONE_NEW* flags
CLONE = {
    "mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
    "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000, "time": 0x00000080,
}

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
RLIM_INFINITY = (1 << 64) - 1

#: sched_setattr(2) policies and flags, ioprio_set(2) classes, set_mempolicy(2) modes and flags
#: (linux/sched.h, linux/ioprio.h, linux/mempolicy.h), by the names config.json uses
POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4, "SCHED_IDLE": 5,
            "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
              "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_NUMA_BALANCING": 1 << 13}
#: seccomp(2): return the filter's listener fd (for a seccomp agent: SCMP_ACT_NOTIFY)
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
