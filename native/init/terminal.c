/*
 * Terminals: the container's (console: also bound on /dev/console) and `exec -t`'s (pty), each
 * allocated in the container's own devpts and its master sent to the console socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "init.h"

/*
 * Allocate a terminal in the container's own devpts and send the master to the console socket
 * (runc's protocol: SCM_RIGHTS, payload = the pty's name). Returns the slave, opened with
 * TIOCGPTPEER, never by path (CVE-2025-52565).
 */
static int new_pty(int sock, unsigned long long rows, unsigned long long cols)
{
	int n, unlock = 0;
	struct statfs sf;
	char name[32];
	int master = open_in_root("/dev/pts/ptmx", O_RDWR | O_NOCTTY, NO_LINKS, 0);
	if (master < 0)
		fail(errno, "open /dev/pts/ptmx in the container");
	CHECK(fstatfs(master, &sf));
	if (sf.f_type != DEVPTS_SUPER_MAGIC)
		fail(EPERM, "/dev/pts/ptmx in the container is not on devpts");
	CHECK(ioctl(master, TIOCSPTLCK, &unlock));
	CHECK(ioctl(master, TIOCGPTN, &n));
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHECK(slave);
	if (rows > USHRT_MAX || cols > USHRT_MAX)
		fail(EINVAL, "terminal size %llux%llu", rows, cols);
	if (rows > 0 || cols > 0) {
		struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
		CHECK(ioctl(master, TIOCSWINSZ, &ws));
	}
	snprintf(name, sizeof name, "/dev/pts/%d", n);
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = name, .iov_len = strlen(name) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &master, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		fail(errno, "send the terminal to the console socket");
	close(master);
	close(sock);
	return slave;
}

/* Make SLAVE our controlling terminal (in a new session) and our stdio. */
static void take_terminal(int slave)
{
	struct stat st;
	CHECK(fstat(slave, &st));
	ctx.tty = st.st_rdev;
	ctx.have_tty = 1;
	ctx.tty_devpts = st.st_dev;   /* host ttys have the same numbers: the devpts tells them apart */
	CHECK(setsid());
	CHECK(ioctl(slave, TIOCSCTTY, 0));
	for (int i = 0; i < 3; i++)
		CHECK(dup2(slave, i));
	close(slave);
}

/* console SOCKET ROWS COLS: the container's terminal, also bound on /dev/console (made if
 * missing, on the container's own mounts only: a /dev bound from a host directory without a
 * console file is refused, not written to). */
void step_console(const union arg *a)
{
	char sp[64], cp[64];
	int slave = new_pty(a[0].fd, a[1].u, a[2].u);
	int con = open_in_root("/dev/console", O_PATH, NO_LINKS, 'f' | OWN);
	if (con < 0 && errno == EXDEV)
		not_own("create", "/dev/console");
	if (con < 0)
		fail(errno, "create /dev/console");
	fdpath(sp, sizeof sp, slave);
	fdpath(cp, sizeof cp, con);
	CHECK(mount(sp, cp, NULL, MS_BIND, NULL));
	close(con);
	take_terminal(slave);
}

/* pty SOCKET ROWS COLS: `exec -t`: a new terminal for this process only (/dev/console is
 * the container's and stays as it is). */
void step_pty(const union arg *a)
{
	take_terminal(new_pty(a[0].fd, a[1].u, a[2].u));
}
