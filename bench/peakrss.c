/* peakrss OUT ARGV...: run a command, write its peak RSS in KiB to the file OUT, exit with its status.
 * A tiny parent that fork()s: the child's peak cannot include a large parent's memory, as it
 * does when a Python process spawns the command (vfork-style spawning shares its pages).
 * The number goes to a file, not to stdout: a container the command leaves behind keeps
 * the command's stdout open. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
		return 2;
	FILE *out = fopen(argv[1], "w");
	if (!out || fprintf(out, "%ld\n", ru.ru_maxrss) < 0 || fclose(out) != 0)
		return 2;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
