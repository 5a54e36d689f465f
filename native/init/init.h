/*
 * pyrt-init's internal header: what its files share. One file per concern:
 *
 *   init.c      main, the sync protocol with the parent, reporting failures
 *   plan.c      reading and checking the whole plan against steps.h before any step runs
 *   paths.c     resolving paths inside the container's root; the container's own mounts
 *   ns.c        namespaces, cgroups, sysctl, hostname, the network's loopback
 *   mounts.c    the root, mounts, propagation, masks, pivot_root   (copyup.c: tmpcopyup)
 *   dev.c       device nodes and /dev's symlinks
 *   terminal.c  the container's terminal and exec's
 *   creds.c     rlimits, keyring, credentials, capabilities, seccomp
 *   sched.c     CPU affinity, memory policy, scheduling policy, I/O priority
 *   hooks.c     createContainer and startContainer hooks
 *   exec.c      finding the program, HOME, cwd, fds, execve
 *
 * steps.h is generated from pyrt/steps.py: the step ids, each step's fields, and the one
 * function per step (step_NAME) each file defines for its concern.
 */
#ifndef PYRT_INIT_H
#define PYRT_INIT_H

#include <limits.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <sys/types.h>

#include "steps.h"

/* A field of a step, typed by plan.c from its kind in steps.h. */
union arg {
	long long i;                                  /* i */
	unsigned long long u;                         /* u */
	int b;                                        /* b: 0 or 1 */
	int fd;                                       /* f: 0..INT_MAX */
	const char *s;                                /* s */
	struct { size_t n; char **v; } strs;          /* S: v[n] is NULL (an argv, an envp) */
	struct { size_t n; long long *v; } ints;      /* I */
	struct { size_t n; int *v; } fds;             /* F */
};

struct step {
	enum step_id id;
	union arg *args;   /* one per field */
};

/* plan.c: split BUF (LEN bytes) into *STEPS (*N of them). On a malformed plan: -1, *N the index
 * of the step at fault and ERR its description ("malformed plan: step N (name): field F: why"). */
int plan_parse(char *buf, size_t len, struct step **steps, size_t *n, char *err, size_t errlen);

/* init.c: the process's state */
struct ctx {
	int sync;                 /* socket to the parent; -1 once it is gone */
	int root;                 /* O_PATH fd of the container's root directory */
	int trace;                /* send "step" messages */
	long index;               /* the step being executed */
	int fifo;                 /* the exec fifo, kept after wait-start until execve */
	int cwd_done;             /* chdir succeeded before the user switch */
	char exe[PATH_MAX];       /* set by resolve-exec, used by exec */
	char home[PATH_MAX + 5];  /* "HOME=..." set by home, added by exec */
	int have_tty;             /* the terminal pyrt-init allocated (console, pty), for chown-stdio: */
	dev_t tty, tty_devpts;    /*   its device number and its devpts instance */
};
extern struct ctx ctx;

void send_msg(const char *a, const char *b, const char *c, const char *d);
void send_fd(const char *kind, int fd);
/* Report the failure of the current step (ERR an errno, or 0: FMT says it all) and exit. */
void __attribute__((noreturn, format(printf, 2, 3))) fail(int err, const char *fmt, ...);
#define CHECK(expr) do { if ((expr) < 0) fail(errno, NULL); } while (0)

/* paths.c */
#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
#define NO_LINKS (RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
#define OWN 0x100   /* open_in_root's create: only on the container's own mounts (else EXDEV) */
int openat2_(int dirfd, const char *path, int flags, unsigned long long resolve);
void fdpath(char *buf, size_t size, int fd);
int open_in_root(const char *path, int flags, unsigned long long resolve, int create);
int open_parent(const char *path, const char **base);
void add_own_mount(int fd);
int is_own_mount(int fd);
void __attribute__((noreturn)) not_own(const char *what, const char *path);
int dev_null(void);

/* mounts.c, copyup.c */
int clone_tree(int fd, int recursive);
void attach(int mnt, int dst);
void copy_up(int lower, int mnt);

#endif
