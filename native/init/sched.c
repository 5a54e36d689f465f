/*
 * Where and how the process runs: its CPUs (sched_setaffinity), memory policy (set_mempolicy),
 * scheduling policy (sched_setattr) and I/O priority (ioprio_set). pyrt/sched.py checked the
 * values; the kernel has the last word (a CPU outside the cgroup's cpuset, SCHED_FIFO without
 * realtime runtime in the cgroup), and its refusal fails the step with its errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

#define MAX_CPUS 8192    /* the kernel's largest NR_CPUS; pyrt/sched.py refuses more */
#define MAX_NODES 1024   /* MAX_NUMNODES at its largest */
#define WORD_BITS (8 * sizeof(unsigned long))

/* Set bit N of MASK (BITS bits long), failing the step for a number out of range. */
static void set_bit(unsigned long *mask, long long n, long long bits, const char *what)
{
	if (n < 0 || n >= bits)
		fail(EINVAL, "%s %lld out of range", what, n);
	mask[n / WORD_BITS] |= 1UL << (n % WORD_BITS);
}

/* cpu-affinity CPUS: run on these CPUs; none listed: on every CPU (the kernel keeps to those
 * the cgroup's cpuset allows), so the container does not inherit pyrt's own affinity. */
void step_cpu_affinity(const union arg *a)
{
	static unsigned long mask[MAX_CPUS / WORD_BITS];
	memset(mask, a[0].ints.n ? 0 : 0xff, sizeof mask);
	for (size_t i = 0; i < a[0].ints.n; i++)
		set_bit(mask, a[0].ints.v[i], MAX_CPUS, "CPU");
	if (syscall(SYS_sched_setaffinity, 0, sizeof mask, mask) < 0)
		fail(errno, "error setting CPU affinity");
}

/* mempolicy MODE FLAGS NODES: the memory policy (MPOL_*), inherited by the program. */
void step_mempolicy(const union arg *a)
{
	static unsigned long nodes[MAX_NODES / WORD_BITS];
	memset(nodes, 0, sizeof nodes);
	for (size_t i = 0; i < a[2].ints.n; i++)
		set_bit(nodes, a[2].ints.v[i], MAX_NODES, "node");
	if (a[0].u > 0xffff || a[1].u > 0xffff)
		fail(EINVAL, "memory policy mode %llu flags %llu", a[0].u, a[1].u);
	/* maxnode counts one more than the bits the kernel reads (set_mempolicy(2)) */
	unsigned long maxnode = a[2].ints.n ? MAX_NODES + 1 : 0;
	if (syscall(SYS_set_mempolicy, (int)(a[0].u | a[1].u), a[2].ints.n ? nodes : NULL, maxnode) < 0)
		fail(errno, "error setting memory policy");
}

/* struct sched_attr of linux/sched/types.h (SCHED_ATTR_SIZE_VER1) */
struct sched_attr_ {
	unsigned size, policy;
	unsigned long long flags;
	int nice;
	unsigned priority;
	unsigned long long runtime, deadline, period;
	unsigned util_min, util_max;
};

/* scheduler POLICY NICE PRIORITY FLAGS RUNTIME DEADLINE PERIOD: sched_setattr(2). */
void step_scheduler(const union arg *a)
{
	if (a[0].u > INT_MAX || a[1].i < -20 || a[1].i > 19 || a[2].u > 99)
		fail(EINVAL, "error setting scheduler");
	struct sched_attr_ attr = {
		.size = sizeof attr, .policy = (unsigned)a[0].u, .flags = a[3].u, .nice = (int)a[1].i,
		.priority = (unsigned)a[2].u, .runtime = a[4].u, .deadline = a[5].u, .period = a[6].u,
	};
	if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
		fail(errno, "error setting scheduler");
}

/* ioprio VALUE: the I/O scheduling class and level (class << 13 | level), ioprio_set(2). */
void step_ioprio(const union arg *a)
{
	if (a[0].u > 0xffff || syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)a[0].u) < 0)
		fail(a[0].u > 0xffff ? EINVAL : errno, "error setting I/O priority");
}
