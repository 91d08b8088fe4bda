/* Raw walk baseline: list every fd of every process, readlink each, and
 * read the fdinfo of each inotify and fanotify fd (or, given TARGET, of the
 * fds linked to TARGET only). With --identities, also read what the per-mark
 * tables show of each process holding one: the owner of /proc/PID, its
 * ns/user and ns/mnt links, comm and cgroup. Runs the walk N times and
 * prints, per walk, "cpu_ns wall_ns bytes".
 * Usage: walk [N [TARGET]] [--identities]. */
#include "dirnames.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static const char *target; /* NULL: both subsystems */
static int identities;

static int wanted(const char *link) {
	if (target)
		return !strcmp(link, target);
	return !strcmp(link, "anon_inode:inotify") || !strcmp(link, "anon_inode:[fanotify]");
}

static long read_identity(const char *pid) {
	char path[64], link[64];
	struct stat st;
	long total = 0;
	snprintf(path, sizeof path, "/proc/%s", pid);
	stat(path, &st);
	const char *links[] = {"ns/user", "ns/mnt"}, *files[] = {"comm", "cgroup"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "/proc/%s/%s", pid, links[i]);
		ssize_t n = readlink(path, link, sizeof link);
		if (n > 0)
			total += n;
		snprintf(path, sizeof path, "/proc/%s/%s", pid, files[i]);
		total += read_file(path);
	}
	return total;
}

static long walk(void) {
	static char proc_buf[64 << 10], fd_buf[64 << 10];
	long total = 0;
	struct names pids = pids_open(proc_buf, sizeof proc_buf);
	if (pids.fd < 0)
		return -1;
	const char *pid;
	while ((pid = next_pid(&pids))) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%s/fd", pid);
		int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			continue;
		struct names fds = names_open(dfd, fd_buf, sizeof fd_buf);
		const char *fd;
		int holder = 0;
		while ((fd = next_name(&fds))) {
			char link[64];
			ssize_t n = readlinkat(dfd, fd, link, sizeof link - 1);
			if (n < 0)
				continue;
			link[n] = 0;
			if (!wanted(link))
				continue;
			snprintf(path, sizeof path, "/proc/%s/fdinfo/%s", pid, fd);
			total += read_file(path);
			holder = 1;
		}
		close(dfd);
		if (holder && identities)
			total += read_identity(pid);
	}
	close(pids.fd);
	return total;
}

int main(int argc, char **argv) {
	const char *args[2] = {"1", NULL}; /* N, TARGET */
	for (int i = 1, k = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--identities"))
			identities = 1;
		else if (k < 2)
			args[k++] = argv[i];
	}
	int n = atoi(args[0]);
	target = args[1];
	time_runs(n, walk);
	return 0;
}
