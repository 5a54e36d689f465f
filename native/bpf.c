/*
 * The cgroup v2 device filter: linux.resources.devices compiled into a BPF_PROG_TYPE_CGROUP_DEVICE
 * program and attached to the container's cgroup (cgroup v2 has no devices.allow file).
 *
 * Semantics (those of the v1 devices controller and of runc): everything is denied unless a
 * rule allows it; rules are applied in order, so the LAST rule that matches an access decides.
 * The program therefore tests the rules from the last to the first and returns at the first
 * match. An allow rule matches when it covers every access bit asked for; a deny rule when it
 * covers any of them.
 *
 * The program is loaded without touching RLIMIT_MEMLOCK: since Linux 5.11 BPF memory is
 * charged to the loader's memory cgroup instead (and root here cannot raise the rlimit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"

/* A rule as Python passes it: 5 ints. */
enum { R_ALLOW, R_TYPE, R_MAJOR, R_MINOR, R_ACCESS, R_INTS };
#define MAX_RULES 1024
/* 6 to read the context, per rule at most 3 tests + 3 (access) + 2 (return), 2 to deny */
#define MAX_INSNS (8 + MAX_RULES * 8)

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
	return i;
}

#define LDX_W(dst, src, off) insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define ALU_IMM(op, dst, imm) insn(BPF_ALU64 | (op) | BPF_K, dst, 0, 0, imm)
#define MOV_REG(dst, src) insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
#define JMP_IMM(op, dst, imm, off) insn(BPF_JMP | (op) | BPF_K, dst, 0, off, imm)
#define EXIT() insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Registers: r2 device type (BPF_DEVCG_DEV_*), r3 access (BPF_DEVCG_ACC_*), r4 major, r5 minor. */
static int build(struct bpf_insn *p, const int *rules, int nrules)
{
	int n = 0;
	p[n++] = LDX_W(2, 1, offsetof(struct bpf_cgroup_dev_ctx, access_type));
	p[n++] = MOV_REG(3, 2);
	p[n++] = ALU_IMM(BPF_AND, 2, 0xffff);
	p[n++] = ALU_IMM(BPF_RSH, 3, 16);
	p[n++] = LDX_W(4, 1, offsetof(struct bpf_cgroup_dev_ctx, major));
	p[n++] = LDX_W(5, 1, offsetof(struct bpf_cgroup_dev_ctx, minor));
	for (int r = nrules - 1; r >= 0; r--) {
		const int *rule = rules + r * R_INTS;
		int jumps[4], nj = 0;
		if (rule[R_TYPE] == 'b' || rule[R_TYPE] == 'c') {
			jumps[nj++] = n;
			p[n++] = JMP_IMM(BPF_JNE, 2, rule[R_TYPE] == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0);
		}
		if (rule[R_MAJOR] >= 0) {
			jumps[nj++] = n;
			p[n++] = JMP_IMM(BPF_JNE, 4, rule[R_MAJOR], 0);
		}
		if (rule[R_MINOR] >= 0) {
			jumps[nj++] = n;
			p[n++] = JMP_IMM(BPF_JNE, 5, rule[R_MINOR], 0);
		}
		p[n++] = MOV_REG(0, 3);
		if (rule[R_ALLOW]) {  /* no match unless the rule grants every access asked for */
			p[n++] = ALU_IMM(BPF_AND, 0, ~rule[R_ACCESS] & 7);
			jumps[nj++] = n;
			p[n++] = JMP_IMM(BPF_JNE, 0, 0, 0);
		} else {  /* no match unless the rule denies some access asked for */
			p[n++] = ALU_IMM(BPF_AND, 0, rule[R_ACCESS] & 7);
			jumps[nj++] = n;
			p[n++] = JMP_IMM(BPF_JEQ, 0, 0, 0);
		}
		p[n++] = ALU_IMM(BPF_MOV, 0, rule[R_ALLOW] ? 1 : 0);
		p[n++] = EXIT();
		for (int j = 0; j < nj; j++)  /* no match: on to the rule before */
			p[jumps[j]].off = (int16_t)(n - jumps[j] - 1);
	}
	p[n++] = ALU_IMM(BPF_MOV, 0, 0);  /* no rule matched: deny */
	p[n++] = EXIT();
	return n;
}

/*
 * Compile RULES (NRULES x {allow, type 'a'|'b'|'c', major or -1, minor or -1, access bits
 * 1 mknod | 2 read | 4 write}), load the program and attach it to CGROUP_FD (multi: other
 * programs stay until pyrt_bpf_detach_others). Returns the program fd, or -errno; the
 * verifier's complaint, if any, is left in LOG.
 */
int pyrt_bpf_devices(int cgroup_fd, const int *rules, int nrules, char *log, int loglen)
{
	static struct bpf_insn prog[MAX_INSNS];
	union bpf_attr attr;
	if (nrules < 0 || nrules > MAX_RULES)
		return -E2BIG;
	int n = build(prog, rules, nrules);

	memset(&attr, 0, sizeof attr);
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = (uint32_t)n;
	attr.license = (uint64_t)(uintptr_t)"Apache-2.0";
	attr.log_buf = (uint64_t)(uintptr_t)log;
	attr.log_size = (uint32_t)loglen;
	attr.log_level = loglen > 0 ? 1 : 0;
	int fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd < 0 && log && loglen > 0 && errno != EACCES && errno != EINVAL) {
		attr.log_level = 0;  /* retry without a log: a too small buffer fails with ENOSPC */
		attr.log_buf = 0;
		attr.log_size = 0;
		fd = sys_bpf(BPF_PROG_LOAD, &attr);
	}
	if (fd < 0)  /* (BPF fds are always close-on-exec) */
		return -errno;

	memset(&attr, 0, sizeof attr);
	attr.target_fd = (uint32_t)cgroup_fd;
	attr.attach_bpf_fd = (uint32_t)fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/*
 * Detach every device program on CGROUP_FD except KEEP_PROG_FD (after `update` attached a new
 * one: while both are attached both must allow, so the change is never looser than either).
 * Returns 0 or -errno.
 */
int pyrt_bpf_detach_others(int cgroup_fd, int keep_prog_fd)
{
	uint32_t ids[64], keep_id = 0, count = 64;
	struct bpf_prog_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof info);
	memset(&attr, 0, sizeof attr);
	attr.info.bpf_fd = (uint32_t)keep_prog_fd;
	attr.info.info_len = sizeof info;
	attr.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0)
		return -errno;
	keep_id = info.id;

	memset(&attr, 0, sizeof attr);
	attr.query.target_fd = (uint32_t)cgroup_fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
	attr.query.prog_cnt = count;
	if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
		return -errno;
	count = attr.query.prog_cnt;
	for (uint32_t i = 0; i < count && i < 64; i++) {
		if (ids[i] == keep_id)
			continue;
		memset(&attr, 0, sizeof attr);
		attr.prog_id = ids[i];
		int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
		if (fd < 0)
			return -errno;
		memset(&attr, 0, sizeof attr);
		attr.target_fd = (uint32_t)cgroup_fd;
		attr.attach_bpf_fd = (uint32_t)fd;
		attr.attach_type = BPF_CGROUP_DEVICE;
		int rc = sys_bpf(BPF_PROG_DETACH, &attr);
		int e = errno;
		close(fd);
		if (rc < 0)
			return -e;
	}
	return 0;
}
