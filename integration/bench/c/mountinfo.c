/* Raw mountinfo baseline: readlink /proc/PID/ns/mnt of every process, and
 * /proc/TID/ns/mnt of the other threads of processes whose task directory
 * counts more than one, then read the mountinfo of the first process or
 * thread found in each mount namespace (processes first). Runs it N times
 * and prints, per run, "cpu_ns wall_ns bytes".
 * Usage: mountinfo [N]. */
#include "dirnames.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MAX_NAMESPACES 4096
#define MAX_THREADED 4096

static char links[MAX_NAMESPACES][64], readers[MAX_NAMESPACES][16];
static int namespaces;

/* see records the namespace of id when it is the first one found in it. */
static void see(const char *id) {
	char path[64], link[64];
	snprintf(path, sizeof path, "/proc/%s/ns/mnt", id);
	ssize_t n = readlink(path, link, sizeof link - 1);
	if (n < 0)
		return;
	link[n] = 0;
	for (int i = 0; i < namespaces; i++)
		if (!strcmp(links[i], link))
			return;
	if (namespaces == MAX_NAMESPACES)
		return;
	strcpy(links[namespaces], link);
	snprintf(readers[namespaces], sizeof readers[0], "%s", id);
	namespaces++;
}

static long read_mountinfo(void) {
	static char proc_buf[64 << 10], task_buf[64 << 10];
	static char threaded[MAX_THREADED][16];
	int nthreaded = 0;
	namespaces = 0;
	struct names pids = pids_open(proc_buf, sizeof proc_buf);
	if (pids.fd < 0)
		return -1;
	const char *pid;
	while ((pid = next_pid(&pids))) {
		char path[64];
		struct stat st;
		snprintf(path, sizeof path, "/proc/%s/task", pid);
		if (!stat(path, &st) && st.st_nlink > 3 && nthreaded < MAX_THREADED)
			snprintf(threaded[nthreaded++], sizeof threaded[0], "%s", pid);
		see(pid);
	}
	close(pids.fd);
	for (int i = 0; i < nthreaded; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%s/task", threaded[i]);
		int task = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (task < 0)
			continue;
		struct names tids = names_open(task, task_buf, sizeof task_buf);
		const char *tid;
		while ((tid = next_name(&tids)))
			if (strcmp(tid, threaded[i]))
				see(tid);
		close(task);
	}
	long total = 0;
	for (int i = 0; i < namespaces; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%s/mountinfo", readers[i]);
		total += read_file(path);
	}
	return total;
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1;
	time_runs(n, read_mountinfo);
	return 0;
}
