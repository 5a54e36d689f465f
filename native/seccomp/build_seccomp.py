"""cffi build script (API, out-of-line mode) for pyrt._seccomp: the libseccomp calls pyrt.seccomp
makes to compile linux.seccomp into a BPF program.

A module of its own so that only containers with a seccomp profile load libseccomp; the
always-loaded pyrt._native does not link it.
"""

from cffi import FFI

ffi = FFI()
ffi.cdef("""
typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;
enum scmp_compare { SCMP_CMP_NE, ... };
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
struct scmp_arg_cmp {
    unsigned int arg;
    enum scmp_compare op;
    scmp_datum_t datum_a;
    scmp_datum_t datum_b;
};
const struct scmp_version *seccomp_version(void);
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                           const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
""")
ffi.set_source("pyrt._seccomp", "#include <seccomp.h>\n", libraries=["seccomp"], extra_compile_args=["-O2", "-Wall"])

if __name__ == "__main__":
    ffi.compile(verbose=True)
