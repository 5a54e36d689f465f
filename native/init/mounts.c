/*
 * The container's root and its mounts: the rootfs bind, config.json's mounts, propagation,
 * readonlyPaths and maskedPaths, and the move into the new root (pivot_root, or --no-pivot).
 *
 * A mount is never looked up again by path once made where an fd can hold it: binds
 * (open_tree) and tmpfs mounts (fsopen, fsmount) are made detached, attached on the
 * destination's fd (move_mount) and given their flags, propagation and attributes through
 * their own fd.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

/* The per-mount flags of the mount FD is on, to keep them when only adding a flag. */
static unsigned long mount_flags(int fd)
{
	static const struct { unsigned long st, ms; } map[] = {
		{ ST_RDONLY, MS_RDONLY }, { ST_NOSUID, MS_NOSUID }, { ST_NODEV, MS_NODEV },
		{ ST_NOEXEC, MS_NOEXEC }, { ST_NOATIME, MS_NOATIME }, { ST_NODIRATIME, MS_NODIRATIME },
		{ ST_RELATIME, MS_RELATIME },
	};
	struct statvfs sv;
	unsigned long flags = 0;
	if (fstatvfs(fd, &sv) < 0)
		return 0;
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (sv.f_flag & map[i].st)
			flags |= map[i].ms;
	return flags;
}

/*
 * A bind remount of the mount at P (FD) with FLAGS. In a user namespace the kernel locks the
 * ro, nosuid, nodev, noexec and atime flags of the mounts it inherited: a remount that would
 * clear one fails with EPERM. Then, as runc, the mount's locked flags are carried over (the
 * atime mode only where FLAGS name none) and the remount tried again.
 */
static int remount_bind(const char *p, int fd, unsigned long flags)
{
	const unsigned long atime = MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME;
	if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | flags, NULL) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	unsigned long have = mount_flags(fd);
	unsigned long keep = have & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
	if (!(flags & atime))
		keep |= have & atime;
	if ((flags | keep) == flags) {
		errno = EPERM;
		return -1;
	}
	return mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | flags | keep, NULL);
}

/*
 * propagation TARGET FLAGS: mount(NULL, M, NULL, FLAGS) in this mount namespace, where M is the
 * mount that holds TARGET: TARGET itself if a mount is rooted there (else EINVAL), or the
 * nearest one above. The climb goes by fd through "..", never by name: no symlink can send it
 * to another mount.
 */
void step_propagation(const union arg *a)
{
	const char *target = a[0].s;
	unsigned long flags = (unsigned long)a[1].u;
	char p[64];
	int fd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail(errno, "propagation target %s", target);
	fdpath(p, sizeof p, fd);
	while (mount(NULL, p, NULL, flags, NULL) < 0) {
		int err = errno, up = -1;
		struct stat here, above;
		if (err == EINVAL)   /* no mount is rooted here: climb, unless this is already the top */
			up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (up < 0 || fstat(fd, &here) < 0 || fstat(up, &above) < 0
		    || (here.st_dev == above.st_dev && here.st_ino == above.st_ino))
			fail(err, "set the propagation of the mount holding %s", target);
		close(fd);
		fd = up;
		fdpath(p, sizeof p, fd);
	}
	close(fd);
}

/* A copy of the mount tree at FD (the whole tree if RECURSIVE), attached nowhere yet: a bind. */
int clone_tree(int fd, int recursive)
{
	int mnt = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
			       (recursive ? AT_RECURSIVE : 0));
	CHECK(mnt);
	return mnt;
}

/* Attach the detached mount MNT on the directory or file DST (both fds: no path to swap). */
void attach(int mnt, int dst)
{
	CHECK(syscall(SYS_move_mount, mnt, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
}

/* root PATH: bind the rootfs onto itself (pivot_root needs a mount point); the root fd is the
 * new mount's own, never PATH looked up again. */
void step_root(const union arg *a)
{
	int fd = open(a[0].s, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd);
	ctx.root = clone_tree(fd, 1);
	attach(ctx.root, fd);
	close(fd);
}

/* Reopen DEST (to reach the mount just made on it) and set its flags or propagation; with
 * ADD the mount's current flags are kept. */
static void remount_fd(const char *dest, unsigned long long resolve, unsigned long flags, int add)
{
	char p[64];
	int fd = open_in_root(dest, O_PATH, resolve, 0);
	CHECK(fd);
	fdpath(p, sizeof p, fd);
	if (flags & ~(MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE | MS_REC))
		CHECK(remount_bind(p, fd, flags | (add ? mount_flags(fd) : 0)));
	else
		CHECK(mount(NULL, p, NULL, flags, NULL));
	close(fd);
}


/*
 * A new tmpfs, attached nowhere yet (fsopen, fsmount): the filesystem mount(2) would make with
 * FLAGS and DATA. Its fd is exact where a path is not (a path can be swapped while we work):
 * tmpcopyup fills the tmpfs before anyone can see it, and its mount id marks it as the
 * container's own (see is_own_mount) once it is attached.
 */
static int new_tmpfs(const char *src, unsigned long flags, const char *data, int mode)
{
	/* superblock flags (MS_SILENT, MS_POSIXACL, MS_I_VERSION have no key: tmpfs needs none);
	 * `ro` makes the mount read-only, not the superblock (as runc: mountinfo says rw there) */
	static const struct { unsigned long ms; const char *key; } sb[] = {
		{ MS_SYNCHRONOUS, "sync" }, { MS_DIRSYNC, "dirsync" },
		{ MS_LAZYTIME, "lazytime" }, { MS_MANDLOCK, "mand" },
	};
	static const struct { unsigned long ms; unsigned attr; } per_mount[] = {
		{ MS_RDONLY, MOUNT_ATTR_RDONLY }, { MS_NOSUID, MOUNT_ATTR_NOSUID }, { MS_NODEV, MOUNT_ATTR_NODEV },
		{ MS_NOEXEC, MOUNT_ATTR_NOEXEC }, { MS_NODIRATIME, MOUNT_ATTR_NODIRATIME },
		{ MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW },
	};
	char opts[4096];
	if (snprintf(opts, sizeof opts, "%s", data) >= (int)sizeof opts)
		fail(E2BIG, "tmpfs options longer than %zu bytes", sizeof opts - 1);
	int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
	CHECK(fs);
	if (*src)
		CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", src, 0));
	for (size_t i = 0; i < sizeof sb / sizeof *sb; i++)
		if (flags & sb[i].ms)
			CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, sb[i].key, NULL, 0));
	/* DATA as tmpfs itself splits it (mm/shmem.c): at commas, except before a digit, which
	 * continues mpol's node list (mpol=bind:0,2) */
	for (char *opt = opts; opt; ) {
		char *next = opt;
		while ((next = strchr(next, ',')) && isdigit((unsigned char)next[1]))
			next++;
		if (next)
			*next++ = '\0';
		char *value = strchr(opt, '=');
		if (value)
			*value++ = '\0';
		if (strcmp(opt, "mode") == 0)
			mode = -1;   /* given: it wins */
		if (*opt)
			CHECK(syscall(SYS_fsconfig, fs, value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, opt, value, 0));
		opt = next;
	}
	if (mode >= 0) {   /* no mode=: the mode of the directory it covers, as runc */
		char m[16];
		snprintf(m, sizeof m, "%o", (unsigned)mode);
		CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", m, 0));
	}
	CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
	unsigned long long attr = flags & MS_STRICTATIME ? MOUNT_ATTR_STRICTATIME
				  : flags & MS_NOATIME ? MOUNT_ATTR_NOATIME : MOUNT_ATTR_RELATIME;
	for (size_t i = 0; i < sizeof per_mount / sizeof *per_mount; i++)
		if (flags & per_mount[i].ms)
			attr |= per_mount[i].attr;
	int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned)attr);
	CHECK(mnt);
	close(fs);
	return mnt;
}

/*
 * Set what mount(2) cannot set while making a mount, on the attached mount MNT itself (through
 * its fd, never its path): per-mount FLAGS (a bind remount: they replace the bind's own, as
 * do no flags with MS_REMOUNT, the plan's sign that options cleared some; with ADD, added to
 * them), PROPAGATION, and the recursive attributes ATTR_SET/ATTR_CLR.
 */
static void finish_mount(int mnt, unsigned long flags, int add, unsigned long prop,
			 unsigned long long attr_set, unsigned long long attr_clr)
{
	char p[64];
	fdpath(p, sizeof p, mnt);
	int remount = flags != 0;   /* MS_REMOUNT alone: remount with no flag (options cleared some) */
	flags &= ~(unsigned long)MS_REMOUNT;
	if (remount)
		CHECK(remount_bind(p, mnt, flags | (add ? mount_flags(mnt) : 0)));
	if (prop)
		CHECK(mount(NULL, p, NULL, prop, NULL));
	if (attr_set || attr_clr) {
		struct mount_attr attr = { .attr_set = attr_set, .attr_clr = attr_clr };
		CHECK(syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr));
	}
}

/*
 * mount SOURCE DEST FSTYPE FLAGS PROPAGATION DATA NOSYMLINKS ATTR_SET ATTR_CLR
 * DEST is opened inside the root by fd and the mount lands on that fd, so no symlink swap can
 * redirect it (CVE-2021-30465). Bind sources that are files get a file destination.
 * ATTR_SET/ATTR_CLR are recursive mount attributes (rro, rnosuid, ...) set with mount_setattr.
 * Binds (open_tree) and tmpfs (new_tmpfs) are made detached and finished through their own fd:
 * a `ro` can never land on another mount while a bind stays writable. A tmpfs with COPYUP
 * (runc's tmpcopyup) is filled with a copy of the directory it covers before it is attached.
 */
static void mount_entry(const union arg *a, int copyup)
{
	const char *src = a[0].s, *dest = a[1].s, *type = a[2].s, *data = a[5].s;
	unsigned long flags = (unsigned long)a[3].u, prop = (unsigned long)a[4].u;
	unsigned long long resolve = a[6].b ? NO_LINKS : IN_ROOT;
	unsigned long long attr_set = a[7].u, attr_clr = a[8].u;
	char dp[64];
	int srcfd = -1, create = 'd';

	if (flags & MS_BIND) {
		struct stat st;
		srcfd = open(src, O_PATH | O_CLOEXEC);
		if (srcfd < 0)
			fail(errno, "bind source %s", src);
		CHECK(fstat(srcfd, &st));
		if (!S_ISDIR(st.st_mode))
			create = 'f';
	}
	int dst = open_in_root(dest, O_PATH, resolve, 0), made = dst < 0 && errno == ENOENT;
	if (made)
		dst = open_in_root(dest, O_PATH, resolve, create);
	if (dst < 0)
		fail(errno, "mount destination %s", dest);
	struct stat dt;
	CHECK(fstat(dst, &dt));
	if ((create == 'd') != (S_ISDIR(dt.st_mode) != 0))
		fail(ENOTDIR, "mount destination %s is %s", dest, create == 'd' ? "not a directory" : "a directory");
	if (srcfd >= 0 || strcmp(type, "tmpfs") == 0) {
		int mnt = srcfd >= 0 ? clone_tree(srcfd, flags & MS_REC)
				     : new_tmpfs(src, flags, data, made ? -1 : (int)(dt.st_mode & 07777));
		if (copyup && !made)
			copy_up(dst, mnt);
		attach(mnt, dst);
		if (srcfd < 0)
			add_own_mount(mnt);
		finish_mount(mnt, srcfd >= 0 ? flags & ~(MS_BIND | MS_REC) : 0, 0, prop, attr_set, attr_clr);
		close(mnt);
		if (srcfd >= 0)
			close(srcfd);
		close(dst);
		return;
	}
	/* Other filesystems (proc, sysfs, devpts, mqueue, cgroup2, overlay, ...): mount(2) takes
	 * each its own way of reading DATA, and no fd reaches the new mount: propagation and the
	 * r* attributes are set on it by path, as runc does. */
	fdpath(dp, sizeof dp, dst);
	CHECK(mount(src, dp, type, flags, *data ? data : NULL));
	close(dst);
	if (prop)
		remount_fd(dest, resolve, prop, 0);
	if (attr_set || attr_clr) {
		struct mount_attr attr = { .attr_set = attr_set, .attr_clr = attr_clr };
		int fd = open_in_root(dest, O_PATH, resolve, 0);
		CHECK(fd);
		CHECK(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr));
		close(fd);
	}
}

void step_mount(const union arg *a) { mount_entry(a, 0); }

/* mount-copyup (mount's arguments): a tmpfs that starts with a copy of what it covers (the
 * tmpcopyup option podman gives --tmpfs and --read-only's tmpfs mounts). */
void step_mount_copyup(const union arg *a) { mount_entry(a, 1); }

/*
 * mount-idmapped TREE SOURCE DEST FLAGS PROPAGATION ATTR_SET ATTR_CLR: attach the idmapped bind
 * TREE the parent made (SOURCE only names it) on DEST inside the root, then give it its flags,
 * propagation and attributes through its fd, as any bind.
 */
void step_mount_idmapped(const union arg *a)
{
	int mnt = a[0].fd;
	const char *dest = a[2].s;
	struct stat st, dt;
	CHECK(fstat(mnt, &st));
	int create = S_ISDIR(st.st_mode) ? 'd' : 'f';
	int dst = open_in_root(dest, O_PATH, IN_ROOT, 0);
	if (dst < 0 && errno == ENOENT)
		dst = open_in_root(dest, O_PATH, IN_ROOT, create);
	if (dst < 0)
		fail(errno, "mount destination %s", dest);
	CHECK(fstat(dst, &dt));
	if ((create == 'd') != (S_ISDIR(dt.st_mode) != 0))
		fail(ENOTDIR, "mount destination %s is %s", dest, create == 'd' ? "not a directory" : "a directory");
	attach(mnt, dst);
	finish_mount(mnt, (unsigned long)a[3].u, 0, (unsigned long)a[4].u, a[5].u, a[6].u);
	close(mnt);
	close(dst);
}

/* remount DEST FLAGS: change the flags of the mount at DEST (e.g. make it read-only). */
void step_remount(const union arg *a)
{
	remount_fd(a[0].s, IN_ROOT, (unsigned long)a[1].u, 1);
}

/* mkdir PATH: create a directory (and its parents) inside the root. */
void step_mkdir(const union arg *a)
{
	int fd = open_in_root(a[0].s, O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK(fd);
	close(fd);
}

/* mask PATH: hide a path: files under the container's /dev/null, directories under an empty
 * read-only tmpfs. The /dev/null used is verified through its fd (CVE-2025-31133). */
void step_mask(const union arg *a)
{
	char p[64], np[64];
	struct stat st;
	int fd = open_in_root(a[0].s, O_PATH, NO_LINKS, 0);
	if (fd < 0 && errno == ENOENT)
		return;
	CHECK(fd);
	CHECK(fstat(fd, &st));
	fdpath(p, sizeof p, fd);
	if (S_ISDIR(st.st_mode)) {
		/* as runc: read-only, room for no file (its one inode is its root) */
		CHECK(mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=4k,nr_inodes=1"));
	} else {
		int null = dev_null();
		fdpath(np, sizeof np, null);
		CHECK(mount(np, p, NULL, MS_BIND, NULL));
		close(null);
	}
	close(fd);
}

/* readonly PATH: bind PATH onto itself, then make that bind read-only (through its fd). */
void step_readonly(const union arg *a)
{
	int fd = open_in_root(a[0].s, O_PATH, IN_ROOT, 0);
	if (fd < 0 && errno == ENOENT)
		return;
	CHECK(fd);
	int mnt = clone_tree(fd, 1);
	attach(mnt, fd);
	finish_mount(mnt, MS_RDONLY, 1, 0, 0, 0);
	close(mnt);
	close(fd);
}


/* enter-root: `exec`: setns into the mount namespace made the container's root our root and
 * cwd; keep an fd of it, for the paths resolved inside the root (cwd, /dev/pts/ptmx). */
void step_enter_root(const union arg *a)
{
	(void)a;
	ctx.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(ctx.root);
}

/* pivot-root: make the root the container's "/" (pivot_root(2): ".", "." then detach). */
void step_pivot_root(const union arg *a)
{
	(void)a;
	int old = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(old);
	CHECK(fchdir(ctx.root));
	CHECK(syscall(SYS_pivot_root, ".", "."));
	/* "." must be the old root (stacked on "/"), not the new one: MS_REC on the new root
	 * would turn the container's own shared mounts into slaves. */
	CHECK(fchdir(old));
	close(old);
	CHECK(mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL));
	CHECK(umount2(".", MNT_DETACH));
	CHECK(chdir("/"));
	close(ctx.root);
	ctx.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(ctx.root);
}

/* move-root: --no-pivot: move the rootfs mount onto "/" and chroot into it. */
void step_move_root(const union arg *a)
{
	(void)a;
	CHECK(fchdir(ctx.root));
	CHECK(mount(".", "/", NULL, MS_MOVE, NULL));
	CHECK(chroot("."));
	CHECK(chdir("/"));
	close(ctx.root);
	ctx.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(ctx.root);
}
