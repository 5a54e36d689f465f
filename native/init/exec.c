/*
 * The last of the process: finding its program and HOME as runc does, its cwd (inside the
 * root), its fds and umask, and the execve that makes pyrt-init the container's process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

static int is_exec(int at, const char *p, struct stat *st)
{
	return fstatat(at, p, st, 0) == 0 && S_ISREG(st->st_mode) && faccessat(at, p, X_OK, 0) == 0;
}

/*
 * resolve-exec ARG0 PATH CWD: find the program in the container (after the root changed) as
 * runc does (Go's exec.LookPath, run in the process's cwd): missing or not executable fails
 * `create` with runc's words. Relative names are looked up in CWD, where execve will run.
 */
void step_resolve_exec(const union arg *a)
{
	const char *arg0 = a[0].s, *path = a[1].s;
	struct stat st;
	int cwd = open_in_root(a[2].s, O_PATH | O_DIRECTORY, IN_ROOT, 0);
	int at = cwd >= 0 ? cwd : AT_FDCWD;   /* no such cwd: the chdir step will say so */
	if (strchr(arg0, '/')) {
		if (fstatat(at, arg0, &st, 0) < 0)
			fail(errno, "exec: \"%s\": stat %s", arg0, arg0);
		if (S_ISDIR(st.st_mode))
			fail(EISDIR, "exec: \"%s\"", arg0);   /* runc's words (execve would say EACCES) */
		if (faccessat(at, arg0, X_OK, 0) < 0)
			fail(errno, "exec: \"%s\"", arg0);
		snprintf(ctx.exe, sizeof ctx.exe, "%s", arg0);
	} else {
		for (const char *dir = path; ; dir++) {   /* an empty PATH has no entries (not ".") */
			const char *end = strchrnul(dir, ':');
			int len = (int)(end - dir);
			snprintf(ctx.exe, sizeof ctx.exe, "%.*s/%s", len ? len : 1, len ? dir : ".", arg0);
			if (*path && is_exec(at, ctx.exe, &st))
				break;
			if (!*path || !*end)
				fail(0, "exec: \"%s\": executable file not found in $PATH", arg0);
			dir = end;
		}
		if (ctx.exe[0] != '/')   /* found through a relative PATH entry: Go's exec.ErrDot */
			fail(0, "exec: \"%s\": cannot run executable found relative to current directory", arg0);
	}
	if (cwd >= 0)
		close(cwd);
}

/* Is the uid field of a passwd line exactly UID (digits only, as Go's strconv reads it)? */
static int uid_is(const char *field, unsigned long long uid)
{
	char *end;
	if (*field < '0' || *field > '9')
		return 0;
	errno = 0;
	unsigned long long v = strtoull(field, &end, 10);
	return !errno && !*end && v == uid;
}

/*
 * home UID: the process's env has no HOME (or an empty one): take UID's home directory from the container's
 * /etc/passwd (read inside the root), or "/", as runc does; exec adds it.
 */
void step_home(const union arg *a)
{
	static char buf[1 << 20];
	const char *dir = "/";
	ssize_t n = 0, got;
	int fd = open_in_root("/etc/passwd", O_RDONLY, IN_ROOT, 0);
	if (fd >= 0) {
		while (n < (ssize_t)sizeof buf - 1 && (got = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
			n += got;
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		char *f[7] = { 0 }, *p = line;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (int i = 0; i < 7 && p; i++) {   /* name:password:uid:gid:gecos:home:shell */
			f[i] = p;
			p = strchr(p, ':');
			if (p)
				*p++ = '\0';
		}
		if (f[5] && uid_is(f[2], a[0].u)) {
			dir = f[5];
			break;
		}
	}
	snprintf(ctx.home, sizeof ctx.home, "HOME=%s", dir);
}

/*
 * chdir PATH EARLY: resolved inside the root, never through a magic link or leaked fd
 * (CVE-2024-21626). As runc, tried first while still root (EARLY: a directory only root may
 * enter works for any user; a permission error, e.g. root squashed on NFS, waits), then, if
 * that did not succeed, after the user switch with the user's permissions.
 */
void step_chdir(const union arg *a)
{
	const char *path = a[0].s;
	if (ctx.cwd_done)
		return;
	int fd = open_in_root(path, O_PATH | O_DIRECTORY, IN_ROOT, 0);
	if (a[1].b) {
		if (fd < 0 && (errno == EACCES || errno == EPERM))
			return;
		if (fd >= 0)
			ctx.cwd_done = 1;
	}
	if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
		/* a seccomp profile loaded before this step (no noNewPrivileges) may deny openat2:
		 * plain chdir, then make sure we did not land outside the root (CVE-2024-21626) */
		char cwd[PATH_MAX];
		if (chdir(path) < 0)
			fail(errno, "chdir to cwd (\"%s\") set in config.json", path);
		if (!getcwd(cwd, sizeof cwd) || cwd[0] != '/')
			fail(EPERM, "chdir to cwd (\"%s\"): the directory is outside the container", path);
		return;
	}
	if (fd < 0)
		fail(errno, "chdir to cwd (\"%s\") set in config.json", path);
	CHECK(fchdir(fd));
	close(fd);
}

/* close-fds FIRST: every fd from FIRST up is closed by the final execve. */
void step_close_fds(const union arg *a)
{
	unsigned first = a[0].u > INT_MAX ? INT_MAX : (unsigned)a[0].u;
	if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
	/* close_range denied by a seccomp profile loaded earlier: mark them one by one */
	struct rlimit rl;
	CHECK(getrlimit(RLIMIT_NOFILE, &rl));
	for (unsigned fd = first; fd < rl.rlim_cur && fd < 1u << 20; fd++)
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

/* umask MASK */
void step_umask(const union arg *a)
{
	if (a[0].u > 0777)
		fail(EINVAL, "umask %llo", a[0].u);
	umask((mode_t)a[0].u);
}

/* exec LISTEN_PID ENV ARGV: become the container's process (LISTEN_PID: add LISTEN_PID=<our pid>
 * to ENV, for --preserve-fds' socket activation). */
void step_exec(const union arg *a)
{
	size_t nenv = a[1].strs.n;
	char listen[32];
	if (!a[2].strs.n)
		fail(EINVAL, "exec without arguments");
	char **envp = calloc(nenv + 3, sizeof *envp);   /* + LISTEN_PID, HOME, NULL */
	if (!envp)
		fail(ENOMEM, NULL);
	memcpy(envp, a[1].strs.v, nenv * sizeof *envp);
	if (a[0].b) {
		snprintf(listen, sizeof listen, "LISTEN_PID=%d", getpid());
		envp[nenv++] = listen;
	}
	if (ctx.home[0]) {   /* at the end, an empty HOME= dropped (as runc) */
		size_t kept = 0;
		for (size_t i = 0; i < nenv; i++)
			if (strcmp(envp[i], "HOME=") != 0)
				envp[kept++] = envp[i];
		envp[kept] = ctx.home;
		envp[kept + 1] = NULL;
	}
	execve(ctx.exe, a[2].strs.v, envp);
	fail(errno, "exec: \"%s\"", ctx.exe);
}
