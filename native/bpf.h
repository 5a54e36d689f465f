/* Declarations of bpf.c for the cffi build (native/build_native.py): the cgroup v2 device filter. */
int pyrt_bpf_devices(int cgroup_fd, const int *rules, int nrules, char *log, int loglen);
int pyrt_bpf_detach_others(int cgroup_fd, int keep_prog_fd);
