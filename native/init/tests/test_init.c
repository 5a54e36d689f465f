/*
 * pyrt-init's own tests, without root and without a container: path resolution inside a root
 * (paths.c) on a temporary directory, and the plan reader (plan.c) on plans made here.
 * `make test-native` builds it with the address and undefined-behaviour sanitizers and runs it.
 *
 * fail() is the one thing of init.c the tested files call: here it records the message and
 * jumps back to the test that expected (or did not expect) a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../init.h"

struct ctx ctx = { .sync = -1, .root = -1, .fifo = -1 };
static jmp_buf failed;
static char fail_message[4096];
static int failures, checks;

void fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fail_message, sizeof fail_message, fmt ? fmt : "", ap);
	va_end(ap);
	(void)err;
	longjmp(failed, 1);
}

#define CHECK_THAT(cond, ...) do { \
	checks++; \
	if (!(cond)) { \
		failures++; \
		fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

/* ------------------------------------------------------------------ paths */

static char root[PATH_MAX];

/* Does FD refer to ROOT/REL? */
static int is(int fd, const char *rel)
{
	char path[PATH_MAX * 2];
	struct stat a, b;
	snprintf(path, sizeof path, "%s/%s", root, rel);
	return fd >= 0 && fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int exists(const char *rel)
{
	char path[PATH_MAX * 2];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", root, rel);
	return lstat(path, &st) == 0;
}

static void in_root(const char *rel, const char *target)
{
	char path[PATH_MAX * 2];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	if (target ? symlink(target, path) : mkdir(path, 0755))
		perror(path), exit(2);
}

static void test_paths(void)
{
	int fd;
	if (setjmp(failed)) {
		CHECK_THAT(0, "unexpected fail(): %s", fail_message);
		return;
	}
	/* "." and "//" components: created and opened whole, not cut at them */
	fd = open_in_root("/a/./b", O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK_THAT(is(fd, "a/b"), "/a/./b opened %s", exists("a/b") ? "another directory" : "without making a/b");
	fd = open_in_root("//c//d", O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK_THAT(is(fd, "c/d"), "//c//d");
	fd = open_in_root("/e/./f/./", O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK_THAT(is(fd, "e/f"), "/e/./f/./");
	fd = open_in_root("/g/.//h/./i", O_PATH | O_DIRECTORY, NO_LINKS, 'd');
	CHECK_THAT(is(fd, "g/h/i"), "/g/.//h/./i without symlinks");
	fd = open_in_root("/j/./k", O_PATH, IN_ROOT, 'f');
	CHECK_THAT(is(fd, "j/k"), "a file at /j/./k");

	/* ".." and absolute symlinks stay inside the root */
	fd = open_in_root("/../../up", O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK_THAT(is(fd, "up"), "/../../up is made inside the root");
	in_root("abs", "/etc");
	fd = open_in_root("/abs/made", O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK_THAT(is(fd, "etc/made") && access("/etc/made", F_OK) < 0, "a link to /etc is the root's /etc");

	/* a dangling link is followed (its target is made, inside the root), unless links are refused */
	in_root("dangling", "t/u");
	fd = open_in_root("/dangling/./v", O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK_THAT(is(fd, "t/u/v"), "through a dangling link");
	in_root("w", NULL);
	in_root("w/link", "/x");
	fd = open_in_root("/w/link/y", O_PATH | O_DIRECTORY, NO_LINKS, 'd');
	CHECK_THAT(fd < 0 && errno == ELOOP && !exists("x"), "NO_LINKS refuses a link (fd %d, %s)", fd, strerror(errno));

	/* without create nothing is made */
	fd = open_in_root("/none/./z", O_PATH, IN_ROOT, 0);
	CHECK_THAT(fd < 0 && errno == ENOENT && !exists("none"), "no create");

	/* open_parent: the parent made on the container's own mount (the rootfs), the last name */
	const char *base = NULL;
	fd = open_parent("/dev/./sub//node", &base);
	CHECK_THAT(is(fd, "dev/sub") && base && strcmp(base, "node") == 0, "open_parent (base %s)", base ? base : "-");
}

/* ------------------------------------------------------------------ the plan reader */

/* A plan from tokens: each argument is one NUL-terminated token; NULL ends the list. */
static size_t plan(char *buf, size_t size, ...)
{
	va_list ap;
	size_t n = 0;
	va_start(ap, size);
	for (const char *t; (t = va_arg(ap, const char *)) != NULL; ) {
		size_t len = strlen(t) + 1;
		if (n + len > size)
			exit(2);
		memcpy(buf + n, t, len);
		n += len;
	}
	va_end(ap);
	return n;
}

/* Parse LEN bytes of BUF; "" if it is read, else the error. */
static const char *parse(char *buf, size_t len, struct step **steps, size_t *n)
{
	static char err[512];
	err[0] = '\0';
	return plan_parse(buf, len, steps, n, err, sizeof err) < 0 ? err : "";
}

#define REFUSED(expect, ...) do { \
	size_t len_ = plan(buf, sizeof buf, __VA_ARGS__, NULL); \
	const char *got_ = parse(buf, len_, &steps, &n); \
	CHECK_THAT(strcmp(got_, expect) == 0, "got \"%s\"", got_); \
} while (0)

static void test_plan(void)
{
	static char buf[1 << 18];
	struct step *steps;
	size_t n, len;
	const char *err;

	/* every kind, typed */
	len = plan(buf, sizeof buf, "oom-score-adj", "-1000",
		   "mount", "src", "/dest", "tmpfs", "18446744073709551615", "0", "", "1", "7", "0",
		   "user", "1000", "100", "2", "5", "0",
		   "join-cgroups", "2", "7", "2147483647",
		   "exec", "0", "0", "3", "sh", "-c", "",
		   "trace", NULL);
	err = parse(buf, len, &steps, &n);
	CHECK_THAT(*err == '\0' && n == 6, "%s (%zu steps)", err, n);
	if (*err == '\0' && n == 6) {
		CHECK_THAT(steps[0].id == STEP_OOM_SCORE_ADJ && steps[0].args[0].i == -1000, "i");
		CHECK_THAT(steps[1].id == STEP_MOUNT && strcmp(steps[1].args[1].s, "/dest") == 0, "s");
		CHECK_THAT(steps[1].args[3].u == ~0ULL && *steps[1].args[5].s == '\0', "u, empty s");
		CHECK_THAT(steps[1].args[6].b == 1 && steps[1].args[7].u == 7, "b");
		CHECK_THAT(steps[2].args[2].ints.n == 2 && steps[2].args[2].ints.v[0] == 5 && steps[2].args[2].ints.v[1] == 0,
			   "I");
		CHECK_THAT(steps[3].args[0].fds.n == 2 && steps[3].args[0].fds.v[1] == 2147483647, "F");
		CHECK_THAT(steps[4].args[1].strs.n == 0 && steps[4].args[1].strs.v[0] == NULL, "empty S");
		CHECK_THAT(steps[4].args[2].strs.n == 3 && strcmp(steps[4].args[2].strs.v[2], "") == 0 &&
			   steps[4].args[2].strs.v[3] == NULL, "S ends with NULL (an argv)");
		CHECK_THAT(steps[5].id == STEP_TRACE, "no fields");
	}
	err = parse(buf, 0, &steps, &n);
	CHECK_THAT(*err == '\0' && n == 0, "an empty plan: %s", err);

	/* every way to be wrong, named */
	REFUSED("malformed plan: step 1: unknown step \"nope\"", "trace", "nope");
	REFUSED("malformed plan: step 0 (user): field groups: missing (the plan ends)", "user", "0", "0");
	REFUSED("malformed plan: step 0 (user): field uid: bad number \"-1\"", "user", "-1", "0", "0");
	REFUSED("malformed plan: step 0 (user): field gid: bad number \" 5\"", "user", "0", " 5", "0");
	REFUSED("malformed plan: step 0 (user): field gid: bad number \"5 \"", "user", "0", "5 ", "0");
	REFUSED("malformed plan: step 0 (user): field gid: bad number \"\"", "user", "0", "", "0");
	REFUSED("malformed plan: step 0 (user): field gid: bad number \"0x10\"", "user", "0", "0x10", "0");
	REFUSED("malformed plan: step 0 (rlimit): field soft: bad number \"18446744073709551616\"",
		"rlimit", "7", "18446744073709551616", "0");
	REFUSED("malformed plan: step 0 (oom-score-adj): field value: bad number \"-\"", "oom-score-adj", "-");
	REFUSED("malformed plan: step 0 (oom-score-adj): field value: bad number \"--1\"", "oom-score-adj", "--1");
	REFUSED("malformed plan: step 0 (oom-score-adj): field value: bad number \"9223372036854775808\"",
		"oom-score-adj", "9223372036854775808");
	REFUSED("malformed plan: step 0 (user): field groups: item 1: bad number \"x\"", "user", "0", "0", "2", "5", "x");
	REFUSED("malformed plan: step 0 (user): field groups: bad count \"1x\"", "user", "0", "0", "1x", "5");
	REFUSED("malformed plan: step 0 (user): field groups: count 99 is more than the plan holds",
		"user", "0", "0", "99", "5");
	REFUSED("malformed plan: step 0 (user): field groups: item 1: missing (the plan ends)", "user", "0", "0", "2", "5");
	REFUSED("malformed plan: step 0 (exec): field listen_pid: not a bool (0 or 1): \"2\"", "exec", "2", "0", "0");
	REFUSED("malformed plan: step 0 (wait-start): field fifo: bad fd \"2147483648\"", "wait-start", "2147483648");
	REFUSED("malformed plan: step 0 (join-cgroups): field tasks: item 0: bad fd \"-3\"", "join-cgroups", "1", "-3");

	/* a last token without its NUL byte */
	len = plan(buf, sizeof buf, "umask", "18", NULL);
	err = parse(buf, len - 1, &steps, &n);
	CHECK_THAT(strcmp(err, "malformed plan: step 0 (umask): field mask: missing (the plan ends)") == 0, "%s", err);
	len = plan(buf, sizeof buf, "trace", "trace", NULL);
	err = parse(buf, len - 1, &steps, &n);
	CHECK_THAT(strcmp(err, "malformed plan: step 1: a last token without its NUL byte") == 0 && n == 1, "%s", err);

	/* no fixed limits: 20000 steps, a list of 30000 items */
	len = 0;
	for (int i = 0; i < 20000; i++)
		len += plan(buf + len, sizeof buf - len, "fork", NULL);
	err = parse(buf, len, &steps, &n);
	CHECK_THAT(*err == '\0' && n == 20000, "%s (%zu steps)", err, n);
	len = plan(buf, sizeof buf, "user", "0", "0", "30000", NULL);
	for (int i = 0; i < 30000; i++)
		len += plan(buf + len, sizeof buf - len, "1", NULL);
	err = parse(buf, len, &steps, &n);
	CHECK_THAT(*err == '\0' && n == 1 && steps[0].args[2].ints.n == 30000, "%s", err);
}

int main(void)
{
	char tmp[] = "/tmp/pyrt-init-test.XXXXXX";
	if (!mkdtemp(tmp))
		return perror("mkdtemp"), 2;
	snprintf(root, sizeof root, "%s/root", tmp);
	if (mkdir(root, 0755) < 0 || (ctx.root = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return perror(root), 2;
	test_paths();
	test_plan();
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
	printf("pyrt-init tests: %d checks, %d failed\n", checks, failures);
	return failures != 0;
}
