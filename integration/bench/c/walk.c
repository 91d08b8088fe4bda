/* Raw walk baseline: list every fd of every process, readlink each, and
 * read the fdinfo of each inotify and fanotify fd (or, given TARGET, of the
 * fds linked to TARGET only). With --identities, also read what the per-mark
 * tables show of each process holding one: the owner of /proc/PID, its
 * ns/user and ns/mnt links, comm and cgroup. With --groups, also tell which
 * of those fds share an open file, each subsystem's files kept sorted by
 * kcmp and each fd's found by binary search: about the fewest comparisons
 * that can tell them apart, as no fdinfo line identifies a file. Runs the
 * walk N times and prints, per walk, "cpu_ns wall_ns bytes".
 * Usage: walk [N [TARGET]] [--identities] [--groups]. */
#include "dirnames.h"
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static const char *target; /* NULL: both subsystems */
static int identities, groups;

/* The notify fds a walk found, by subsystem (0 inotify, 1 fanotify). */
struct notify_fd {
	int pid, fd;
};
static struct notify_fd *found[2];
static size_t nfound[2], capfound[2];

static void keep(int sub, const char *pid, const char *fd) {
	if (nfound[sub] == capfound[sub]) {
		capfound[sub] = capfound[sub] ? 2 * capfound[sub] : 1024;
		found[sub] = realloc(found[sub], capfound[sub] * sizeof *found[sub]);
		if (!found[sub])
			abort();
	}
	found[sub][nfound[sub]++] = (struct notify_fd){atoi(pid), atoi(fd)};
}

/* kcmp_file: 0 the same file, 1 a's before b's, 2 after; other: gone. */
static long kcmp_file(struct notify_fd a, struct notify_fd b) {
	return syscall(SYS_kcmp, a.pid, b.pid, KCMP_FILE, a.fd, b.fd);
}

/* count_files sorts the files of the n fds in place by binary insertion,
 * dropping fds whose file is already there, and returns the files. */
static long count_files(struct notify_fd *fds, size_t n) {
	size_t files = 0;
	for (size_t i = 0; i < n; i++) {
		size_t lo = 0, hi = files;
		long r = -1;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			r = kcmp_file(fds[i], fds[mid]);
			if (r == 0 || (r != 1 && r != 2))
				break;
			if (r == 1)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (lo < hi)
			continue; /* the same file, or gone */
		struct notify_fd f = fds[i];
		memmove(fds + lo + 1, fds + lo, (files - lo) * sizeof *fds);
		fds[lo] = f;
		files++;
	}
	return files;
}

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
			if (groups)
				keep(!strcmp(link, "anon_inode:[fanotify]"), pid, fd);
			snprintf(path, sizeof path, "/proc/%s/fdinfo/%s", pid, fd);
			total += read_file(path);
			holder = 1;
		}
		close(dfd);
		if (holder && identities)
			total += read_identity(pid);
	}
	close(pids.fd);
	for (int sub = 0; sub < 2 && groups; sub++) {
		total += count_files(found[sub], nfound[sub]);
		nfound[sub] = 0;
	}
	return total;
}

int main(int argc, char **argv) {
	const char *args[2] = {"1", NULL}; /* N, TARGET */
	for (int i = 1, k = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--identities"))
			identities = 1;
		else if (!strcmp(argv[i], "--groups"))
			groups = 1;
		else if (k < 2)
			args[k++] = argv[i];
	}
	int n = atoi(args[0]);
	target = args[1];
	time_runs(n, walk);
	return 0;
}
