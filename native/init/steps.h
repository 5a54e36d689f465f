/* Generated from pyrt/steps.py and pyrt/protocol.py by `python -m pyrt.cheader`: do not edit.
 * tests/unit/test_plan.py checks that it is up to date. */
#ifndef PYRT_STEPS_H
#define PYRT_STEPS_H

/* The sync messages (pyrt/protocol.py) */
#define SYNC_MAPPED "mapped"
#define SYNC_GO "go"
#define SYNC_STEP "step"
#define SYNC_PID "pid"
#define SYNC_HOOKS "hooks"
#define SYNC_SECCOMP "seccomp"
#define SYNC_READY "ready"
#define SYNC_ERROR "error"
#define SYNC_FIFO_START "0"

#define STEP_MAX_FIELDS 9

enum step_id {
	STEP_TRACE,
	STEP_SETNS,
	STEP_UNSHARE,
	STEP_TIME_OFFSETS,
	STEP_NS_ROOT,
	STEP_JOIN_CGROUPS,
	STEP_FORK,
	STEP_OOM_SCORE_ADJ,
	STEP_CPU_AFFINITY,
	STEP_MEMPOLICY,
	STEP_SCHEDULER,
	STEP_IOPRIO,
	STEP_PROPAGATION,
	STEP_ROOT,
	STEP_MOUNT,
	STEP_MOUNT_COPYUP,
	STEP_MOUNT_IDMAPPED,
	STEP_REMOUNT,
	STEP_MKDIR,
	STEP_MKNOD,
	STEP_SYMLINK,
	STEP_CONSOLE,
	STEP_PTY,
	STEP_LO_UP,
	STEP_HOOK_SYNC,
	STEP_HOOK,
	STEP_SYSCTL,
	STEP_READONLY,
	STEP_MASK,
	STEP_PIVOT_ROOT,
	STEP_MOVE_ROOT,
	STEP_ENTER_ROOT,
	STEP_HOSTNAME,
	STEP_DOMAINNAME,
	STEP_PERSONALITY,
	STEP_RLIMIT,
	STEP_SESSION_KEYRING,
	STEP_HOME,
	STEP_RESOLVE_EXEC,
	STEP_CHOWN_STDIO,
	STEP_SECCOMP,
	STEP_CAP_BOUNDING,
	STEP_USER,
	STEP_CAPS,
	STEP_NO_NEW_PRIVILEGES,
	STEP_CHDIR,
	STEP_CLOSE_FDS,
	STEP_UMASK,
	STEP_READY,
	STEP_WAIT_START,
	STEP_EXEC,
	STEP_COUNT
};

/* One function per step, given the step's fields as typed by plan.c (init.h: union arg) */
union arg;
void step_trace(const union arg *a);
void step_setns(const union arg *a);
void step_unshare(const union arg *a);
void step_time_offsets(const union arg *a);
void step_ns_root(const union arg *a);
void step_join_cgroups(const union arg *a);
void step_fork(const union arg *a);
void step_oom_score_adj(const union arg *a);
void step_cpu_affinity(const union arg *a);
void step_mempolicy(const union arg *a);
void step_scheduler(const union arg *a);
void step_ioprio(const union arg *a);
void step_propagation(const union arg *a);
void step_root(const union arg *a);
void step_mount(const union arg *a);
void step_mount_copyup(const union arg *a);
void step_mount_idmapped(const union arg *a);
void step_remount(const union arg *a);
void step_mkdir(const union arg *a);
void step_mknod(const union arg *a);
void step_symlink(const union arg *a);
void step_console(const union arg *a);
void step_pty(const union arg *a);
void step_lo_up(const union arg *a);
void step_hook_sync(const union arg *a);
void step_hook(const union arg *a);
void step_sysctl(const union arg *a);
void step_readonly(const union arg *a);
void step_mask(const union arg *a);
void step_pivot_root(const union arg *a);
void step_move_root(const union arg *a);
void step_enter_root(const union arg *a);
void step_hostname(const union arg *a);
void step_domainname(const union arg *a);
void step_personality(const union arg *a);
void step_rlimit(const union arg *a);
void step_session_keyring(const union arg *a);
void step_home(const union arg *a);
void step_resolve_exec(const union arg *a);
void step_chown_stdio(const union arg *a);
void step_seccomp(const union arg *a);
void step_cap_bounding(const union arg *a);
void step_user(const union arg *a);
void step_caps(const union arg *a);
void step_no_new_privileges(const union arg *a);
void step_chdir(const union arg *a);
void step_close_fds(const union arg *a);
void step_umask(const union arg *a);
void step_ready(const union arg *a);
void step_wait_start(const union arg *a);
void step_exec(const union arg *a);

#ifdef PYRT_STEP_TABLE
/* Each step's name, its fields' kinds (i u s b f S I F: see pyrt/steps.py) and names */
static const struct step_type {
	const char *name;
	const char *kinds;
	const char *fields[STEP_MAX_FIELDS];
} STEP_TYPES[STEP_COUNT] = {
	[STEP_TRACE] = { "trace", "", { 0 } },
	[STEP_SETNS] = { "setns", "fu", { "fd", "nstype" } },
	[STEP_UNSHARE] = { "unshare", "u", { "flags" } },
	[STEP_TIME_OFFSETS] = { "time-offsets", "iiii", { "monotonic_s", "monotonic_ns", "boottime_s", "boottime_ns" } },
	[STEP_NS_ROOT] = { "ns-root", "", { 0 } },
	[STEP_JOIN_CGROUPS] = { "join-cgroups", "F", { "tasks" } },
	[STEP_FORK] = { "fork", "", { 0 } },
	[STEP_OOM_SCORE_ADJ] = { "oom-score-adj", "i", { "value" } },
	[STEP_CPU_AFFINITY] = { "cpu-affinity", "I", { "cpus" } },
	[STEP_MEMPOLICY] = { "mempolicy", "uuI", { "mode", "flags", "nodes" } },
	[STEP_SCHEDULER] = { "scheduler", "uiuuuuu", { "policy", "nice", "priority", "flags", "runtime", "deadline", "period" } },
	[STEP_IOPRIO] = { "ioprio", "u", { "value" } },
	[STEP_PROPAGATION] = { "propagation", "su", { "target", "flags" } },
	[STEP_ROOT] = { "root", "s", { "path" } },
	[STEP_MOUNT] = { "mount", "sssuusbuu", { "source", "dest", "fstype", "flags", "propagation", "data", "nosymlinks", "attr_set", "attr_clr" } },
	[STEP_MOUNT_COPYUP] = { "mount-copyup", "sssuusbuu", { "source", "dest", "fstype", "flags", "propagation", "data", "nosymlinks", "attr_set", "attr_clr" } },
	[STEP_MOUNT_IDMAPPED] = { "mount-idmapped", "fssuuuu", { "tree", "source", "dest", "flags", "propagation", "attr_set", "attr_clr" } },
	[STEP_REMOUNT] = { "remount", "su", { "dest", "flags" } },
	[STEP_MKDIR] = { "mkdir", "s", { "path" } },
	[STEP_MKNOD] = { "mknod", "ssuuuuu", { "path", "type", "major", "minor", "mode", "uid", "gid" } },
	[STEP_SYMLINK] = { "symlink", "ss", { "target", "link" } },
	[STEP_CONSOLE] = { "console", "fuu", { "socket", "rows", "cols" } },
	[STEP_PTY] = { "pty", "fuu", { "socket", "rows", "cols" } },
	[STEP_LO_UP] = { "lo-up", "", { 0 } },
	[STEP_HOOK_SYNC] = { "hook-sync", "", { 0 } },
	[STEP_HOOK] = { "hook", "susSSu", { "kind", "timeout", "path", "env", "args", "index" } },
	[STEP_SYSCTL] = { "sysctl", "ss", { "path", "value" } },
	[STEP_READONLY] = { "readonly", "s", { "path" } },
	[STEP_MASK] = { "mask", "s", { "path" } },
	[STEP_PIVOT_ROOT] = { "pivot-root", "", { 0 } },
	[STEP_MOVE_ROOT] = { "move-root", "", { 0 } },
	[STEP_ENTER_ROOT] = { "enter-root", "", { 0 } },
	[STEP_HOSTNAME] = { "hostname", "s", { "name" } },
	[STEP_DOMAINNAME] = { "domainname", "s", { "name" } },
	[STEP_PERSONALITY] = { "personality", "u", { "domain" } },
	[STEP_RLIMIT] = { "rlimit", "uuu", { "resource", "soft", "hard" } },
	[STEP_SESSION_KEYRING] = { "session-keyring", "s", { "name" } },
	[STEP_HOME] = { "home", "u", { "uid" } },
	[STEP_RESOLVE_EXEC] = { "resolve-exec", "sss", { "arg0", "path", "cwd" } },
	[STEP_CHOWN_STDIO] = { "chown-stdio", "u", { "uid" } },
	[STEP_SECCOMP] = { "seccomp", "fu", { "program", "flags" } },
	[STEP_CAP_BOUNDING] = { "cap-bounding", "u", { "keep" } },
	[STEP_USER] = { "user", "uuI", { "uid", "gid", "groups" } },
	[STEP_CAPS] = { "caps", "uuuu", { "effective", "permitted", "inheritable", "ambient" } },
	[STEP_NO_NEW_PRIVILEGES] = { "no-new-privileges", "", { 0 } },
	[STEP_CHDIR] = { "chdir", "sb", { "path", "early" } },
	[STEP_CLOSE_FDS] = { "close-fds", "u", { "first" } },
	[STEP_UMASK] = { "umask", "u", { "mask" } },
	[STEP_READY] = { "ready", "", { 0 } },
	[STEP_WAIT_START] = { "wait-start", "f", { "fifo" } },
	[STEP_EXEC] = { "exec", "bSS", { "listen_pid", "env", "argv" } },
};
#endif

#ifdef PYRT_STEP_FUNCTIONS
static void (*const STEP_FUNCTIONS[STEP_COUNT])(const union arg *) = {
	[STEP_TRACE] = step_trace,
	[STEP_SETNS] = step_setns,
	[STEP_UNSHARE] = step_unshare,
	[STEP_TIME_OFFSETS] = step_time_offsets,
	[STEP_NS_ROOT] = step_ns_root,
	[STEP_JOIN_CGROUPS] = step_join_cgroups,
	[STEP_FORK] = step_fork,
	[STEP_OOM_SCORE_ADJ] = step_oom_score_adj,
	[STEP_CPU_AFFINITY] = step_cpu_affinity,
	[STEP_MEMPOLICY] = step_mempolicy,
	[STEP_SCHEDULER] = step_scheduler,
	[STEP_IOPRIO] = step_ioprio,
	[STEP_PROPAGATION] = step_propagation,
	[STEP_ROOT] = step_root,
	[STEP_MOUNT] = step_mount,
	[STEP_MOUNT_COPYUP] = step_mount_copyup,
	[STEP_MOUNT_IDMAPPED] = step_mount_idmapped,
	[STEP_REMOUNT] = step_remount,
	[STEP_MKDIR] = step_mkdir,
	[STEP_MKNOD] = step_mknod,
	[STEP_SYMLINK] = step_symlink,
	[STEP_CONSOLE] = step_console,
	[STEP_PTY] = step_pty,
	[STEP_LO_UP] = step_lo_up,
	[STEP_HOOK_SYNC] = step_hook_sync,
	[STEP_HOOK] = step_hook,
	[STEP_SYSCTL] = step_sysctl,
	[STEP_READONLY] = step_readonly,
	[STEP_MASK] = step_mask,
	[STEP_PIVOT_ROOT] = step_pivot_root,
	[STEP_MOVE_ROOT] = step_move_root,
	[STEP_ENTER_ROOT] = step_enter_root,
	[STEP_HOSTNAME] = step_hostname,
	[STEP_DOMAINNAME] = step_domainname,
	[STEP_PERSONALITY] = step_personality,
	[STEP_RLIMIT] = step_rlimit,
	[STEP_SESSION_KEYRING] = step_session_keyring,
	[STEP_HOME] = step_home,
	[STEP_RESOLVE_EXEC] = step_resolve_exec,
	[STEP_CHOWN_STDIO] = step_chown_stdio,
	[STEP_SECCOMP] = step_seccomp,
	[STEP_CAP_BOUNDING] = step_cap_bounding,
	[STEP_USER] = step_user,
	[STEP_CAPS] = step_caps,
	[STEP_NO_NEW_PRIVILEGES] = step_no_new_privileges,
	[STEP_CHDIR] = step_chdir,
	[STEP_CLOSE_FDS] = step_close_fds,
	[STEP_UMASK] = step_umask,
	[STEP_READY] = step_ready,
	[STEP_WAIT_START] = step_wait_start,
	[STEP_EXEC] = step_exec,
};
#endif

#endif
