/* Declarations shared by spawn.c and the cffi build (native/build_native.py). */
long pyrt_spawn(unsigned long long flags, int cgroup_fd, int exe_fd, int sync_fd, int plan_fd,
		const int *keep, int nkeep, int *pidfd);
int pyrt_socketpair(int fds[2]);
int pyrt_idmapped_tree(const char *path, int recursive_clone, int recursive_idmap, int userns_fd);
